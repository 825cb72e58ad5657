"""Signal processing applied identically to every recording (DESIGN.md §4).

`pipeline.preprocess_recording` chains the steps: resample each electrode to the target rate,
common-average reference, zero-phase band-pass + notch, per-recording robust normalisation.
"""
