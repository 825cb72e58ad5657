"""DVC stage `eval`: predict eval, score it at the operating points frozen on dev.

Driver: szflow.stages.eval, run through the executor of the active hardware profile.
"""

from szflow.stages.eval import main

if __name__ == "__main__":
    main()
