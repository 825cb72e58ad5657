"""Signal processing applied identically to every recording (DESIGN.md §4).

`chain.preprocess_recording` chains the steps: resample each electrode to the target rate,
common-average reference, zero-phase band-pass + notch, per-recording robust normalisation;
`streaming` runs the same steps chunk by chunk over recordings too long to hold; `jobs` writes
a corpus's preprocess folder one recording at a time.
"""
