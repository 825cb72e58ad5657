"""DVC stage `cache`: data/preprocess -> data/cache/<split> (driver: szflow.stages.cache)."""

from szflow.stages.cache import main

if __name__ == "__main__":
    main()
