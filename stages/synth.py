"""DVC stage `synth`: the embedded synthetic corpus (driver: szflow.stages.synth)."""

from szflow.stages.synth import main

if __name__ == "__main__":
    main()
