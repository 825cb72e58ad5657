"""DVC stage `train`: runs szflow.train.run_train_stage through the profile's executor (here or on Modal).

Outputs: models/best.pt, models/last.pt, models/baseline.json, metrics/train.json, metrics/train_curves.
"""

from szflow.stages.runner import stage_main

if __name__ == "__main__":
    stage_main("train")
