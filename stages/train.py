"""DVC stage `train` (szflow.stages.train), through the hardware profile's executor."""

from szflow.stages.train import main

if __name__ == "__main__":
    main()
