"""Run the GPU stages (train, dev, eval) here or on Modal.

`executor.run_stage(name, params)` picks the executor of the active hardware profile; `specs` says
what each GPU stage reads and writes; `container` is what runs inside a remote container;
`modal_app` builds the Modal objects; `plan` shows what would run where. This file imports nothing,
so `python -m szflow.remote.ddp` (one torchrun rank) loads only what that rank needs.
"""
