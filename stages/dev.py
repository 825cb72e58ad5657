"""DVC stage `dev`: predict dev, tune and freeze the operating points.

Driver: szflow.stages.dev, run through the executor of the active hardware profile.
"""

from szflow.stages.dev import main

if __name__ == "__main__":
    main()
