"""DVC stage `params`: the params each stage reads, one file per stage (szflow.stages.params)."""

from szflow.stages.params import main

if __name__ == "__main__":
    main()
