"""DVC stage `dev`: runs szflow.evaluate.run_dev_stage through the profile's executor."""

from szflow.stages.runner import stage_main

if __name__ == "__main__":
    stage_main("dev")
