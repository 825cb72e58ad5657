"""`szflow review`: one self-contained HTML page to look at detections as an EEG reader does.

`sources` gathers the recordings (EDFs run through the detector, or a pipeline split's tracks),
`data` the traces, probabilities, references and montage report of each, `page` writes the page.
"""

from szflow.review.data import ReviewRecording, TraceSegment, review_recording
from szflow.review.page import render_page, write_review
from szflow.review.sources import ReviewInputs, review_edfs, review_split

__all__ = ["ReviewInputs", "ReviewRecording", "TraceSegment", "render_page", "review_edfs", "review_recording",
           "review_split", "write_review"]
