"""Training: the trainer and its loop (`trainer`), the validation split and model selection, the loss,
the schedule, RNG state, curves and W&B logging, and data-parallel ranks (`distributed`)."""
