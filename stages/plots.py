"""DVC stage `plots`: data files for `dvc plots show` and PNGs (driver: szflow.stages.plots)."""

from szflow.stages.plots import main

if __name__ == "__main__":
    main()
