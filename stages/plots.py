"""DVC stage `plots`: data files for `dvc plots show` and PNGs, from predictions and training curves."""

from szflow.plots import run_plots_stage
from szflow.stages.runner import stage_main

if __name__ == "__main__":
    stage_main(run_plots_stage)
