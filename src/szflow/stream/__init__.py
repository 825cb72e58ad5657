"""Live seizure detection on a Lab Streaming Layer stream (`szflow stream`, docs/stream.md).

`source` (the LSL inlet and what live streams do), `preprocess_online` (the signal chain block by
block), `detector_online` (every hop, the newest frames with the trained left context and a
lookahead), `postprocess_online` (alarms and events with `szflow.postprocess`'s definitions),
`outputs` (event files, LSL markers), `runner` (the session, the command, the replay mode).
"""

from szflow.stream.detector_online import FrameBlock, OnlineDetector, presence_mask, score_window
from szflow.stream.postprocess_online import Alarm, ClosedEvent, OnlineEvents
from szflow.stream.preprocess_online import OnlinePreprocessor, OnlineResampler
from szflow.stream.runner import StreamSession, StreamSummary, format_stream_summary, run_stream, start_replay
from szflow.stream.source import (
    ChannelSetChanged,
    LslSource,
    StreamError,
    StreamNotFound,
    StreamVanished,
    stream_montage,
)

__all__ = [
    "Alarm", "ChannelSetChanged", "ClosedEvent", "FrameBlock", "LslSource", "OnlineDetector", "OnlineEvents",
    "OnlinePreprocessor", "OnlineResampler", "StreamError", "StreamNotFound", "StreamSession", "StreamSummary",
    "StreamVanished", "format_stream_summary", "presence_mask", "run_stream", "score_window", "start_replay",
    "stream_montage",
]
