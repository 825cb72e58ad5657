"""DVC stage `preprocess` (szflow.stages.preprocess)."""

from szflow.stages.preprocess import main

if __name__ == "__main__":
    main()
