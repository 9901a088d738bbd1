"""FFmpeg's side of the media package (through PyAV): video headers, exact frame times, and
decoding only the frames a sampling picks.

Frame times come from demuxing the packets without decoding them (their presentation timestamps,
sorted). :func:`read_video` then decodes forward from the keyframe before each picked frame,
seeking when that keyframe lies past the decoder's position, and turns only the picked frames into
arrays: its memory is the picked frames', whatever the clip's length. Frames on the way that no
other frame references (most B-frames) are not even decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from vrexp.configs import FrameSampling
from vrexp.configs.choices import Media
from vrexp.media.base import Clip, MediaError, MediaInfo, check_pixels
from vrexp.media.images import to_model_size
from vrexp.media.selection import select_frames

log = logging.getLogger(__name__)

# Leading bytes of the containers FFmpeg reads that Pillow does not: a file that starts so but
# does not open is a damaged video, not something else.
CONTAINER_SIGNATURES = {
    b"\x1a\x45\xdf\xa3": "Matroska / WebM",
    b"RIFF": "AVI",
    b"\x00\x00\x01\xba": "MPEG program stream",
    b"FLV": "FLV",
    b"OggS": "Ogg",
}


# FFmpeg demuxers for still images (chosen by the file name alone) and text (ANSI art): a file
# only they open is one Pillow, which reads every still image vrexp takes, did not recognise.
NOT_VIDEO_DEMUXERS = frozenset({"image2", "tty"})


def open_video(path: Path) -> av.container.InputContainer:
    """``path`` opened by FFmpeg, which Pillow did not recognise."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as err:
        raise MediaError(_not_openable(path, err)) from err
    name = container.format.name
    if name in NOT_VIDEO_DEMUXERS or name.endswith("_pipe"):
        container.close()
        raise MediaError(
            f"{path}: not a media file (Pillow does not recognise it as an image; FFmpeg's "
            f"{name} reader only goes by its name)"
        )
    return container


def _not_openable(path: Path, err: Exception) -> str:
    with path.open("rb") as f:
        head = f.read(12)
    container = "MP4 / MOV" if head[4:8] == b"ftyp" else None
    container = container or next(
        (name for magic, name in CONTAINER_SIGNATURES.items() if head.startswith(magic)), None
    )
    if container is not None:
        return f"{path}: truncated or corrupt {container} file (FFmpeg: {err})"
    return f"{path}: not a media file (neither Pillow nor FFmpeg recognises it: {err})"


def video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    """The file's first video stream (cover art excluded) that this FFmpeg build can decode."""
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        held = sorted({s.type for s in container.streams}) or ["no streams"]
        raise MediaError(f"{path}: no video stream (it holds {', '.join(held)})")
    stream = streams[0]
    if stream.codec_context is None:
        # PyAV names no codec it has no decoder for; FFmpeg's version says what the build is.
        version = ".".join(map(str, av.library_versions["libavcodec"]))
        raise MediaError(
            f"{path}: its video codec cannot be decoded by this FFmpeg build (libavcodec "
            f"{version}, PyAV {av.__version__}: no decoder for it); re-encode it, e.g. to H.264"
        )
    stream.thread_type = "AUTO"  # frame and slice threads: decoding is most of the cost
    return stream


def frame_times(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted presentation timestamps of the stream's frames and of its keyframes (in the
    stream's time base), from the packets alone."""
    times, keys = [], []
    try:
        for packet in container.demux(stream):
            time = packet.pts if packet.pts is not None else packet.dts
            if packet.size == 0 or time is None or packet.is_discard:
                continue  # the end-of-stream packet; packets an edit list hides
            times.append(time)
            if packet.is_keyframe:
                keys.append(time)
    except av.FFmpegError as err:
        raise MediaError(f"{path}: truncated or corrupt video data ({err})") from err
    if not times:
        raise MediaError(f"{path}: the video stream holds no frames")
    if stream.frames > 0 and len(times) < stream.frames:
        raise MediaError(
            f"{path}: truncated: its header promises {stream.frames} frames, the demuxer found "
            f"{len(times)} before the data ended"
        )
    if not stream.frames:
        _warn_if_short(path, container, stream, (max(times) - min(times)) * stream.time_base)
    return np.unique(np.asarray(times, dtype=np.int64)), np.unique(np.asarray(keys, np.int64))


def _warn_if_short(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, last: float
) -> None:
    """Matroska and WebM state no frame count, only durations: a video that ends over a second
    before its stated duration was probably cut short (a warning: another stream may simply run
    longer)."""
    stated = _stated_duration(container, stream)
    if stated is not None and last < stated - 1.0:
        log.warning(
            "%s: its frames end at %.2f s but its header states %.2f s; truncated?",
            path,
            last,
            stated,
        )


def _stated_duration(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    """Seconds the header gives the video: the stream's duration, its DURATION tag (Matroska),
    or else the whole file's."""
    if stream.duration is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return container.duration / av.time_base if container.duration else None


def probe_video(path: Path) -> MediaInfo:
    with open_video(path) as container:
        stream = video_stream(path, container)
        context = stream.codec_context
        count = stream.frames or len(frame_times(path, container, stream)[0])
        rate = stream.average_rate or stream.guessed_rate
        duration = _stated_duration(container, stream)
        return MediaInfo(
            path=path,
            kind=Media.video,
            width=context.width,
            height=context.height,
            num_frames=count,
            fps=float(rate) if rate else None,
            duration=duration,
            codec=context.codec.canonical_name,
            container=container.format.name,
        )


def load_video(path: Path, max_pixels: int | None) -> np.ndarray:
    """Every frame, uint8 [T, H, W, 3], decoded in one pass into one array."""
    with open_video(path) as container:
        stream = video_stream(path, container)
        check_pixels(path, stream.codec_context.width, stream.codec_context.height, max_pixels)
        count = len(frame_times(path, container, stream)[0])
        container.seek(0)
        frames = None
        extra = []  # frames beyond the packet count (a decoder that splits packets)
        filled = 0
        for frame in _frames(path, container, stream):
            pixels = _rgb(frame)
            if frames is None:
                frames = np.empty((count, *pixels.shape), dtype=np.uint8)
            if filled < count:
                frames[filled] = pixels
            else:
                extra.append(pixels)
            filled += 1
        if frames is None:
            raise MediaError(f"{path}: the video stream decodes to no frames")
        if extra:
            return np.concatenate([frames, np.stack(extra)])
        return frames[:filled]


def read_video(
    path: Path, sampling: FrameSampling, max_pixels: int | None, size: int | None = None
) -> Clip:
    """The frames ``sampling`` picks, with their times; decodes no more than it must. With
    ``size``, each picked frame is reduced to size x size as it is converted."""
    with open_video(path) as container:
        stream = video_stream(path, container)
        check_pixels(path, stream.codec_context.width, stream.codec_context.height, max_pixels)
        times, keys = frame_times(path, container, stream)
        seconds = (times - times[0]) * float(stream.time_base)
        index = select_frames(seconds, sampling)
        found = _decode_at(path, container, stream, times[index], keys, size)
    if len(found) < len(index):
        log.info("%s: frames not found by seeking; decoding it from the start", path)
        frames = _decode_by_position(path, index, size)
    else:
        frames = np.stack([found[t] for t in times[index].tolist()])
    return Clip(frames, seconds[index], sampling)


def _decode_at(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    wanted: np.ndarray,
    keys: np.ndarray,
    size: int | None,
) -> dict[int, np.ndarray]:
    """Frames whose timestamps are in ``wanted`` (sorted), by timestamp. Each is reached by
    decoding forward; the decoder seeks when the keyframe before a wanted frame lies past its
    position (decoding up to that keyframe would be wasted). A frame the decoder never shows
    under its packet's timestamp is left out (the caller falls back)."""
    wanted_set = set(wanted.tolist())
    found: dict[int, np.ndarray] = {}
    frames: Iterator[av.VideoFrame] | None = None
    position: int | None = None  # timestamp of the last frame decoded since the last seek
    for target in wanted.tolist():
        if target in found:
            continue
        before = np.searchsorted(keys, target, side="right") - 1
        key = int(keys[before]) if before >= 0 else None
        if frames is None or position is None or (key is not None and key > position):
            container.seek(key if key is not None else 0, stream=stream, backward=True)
            frames, position = _frames(path, container, stream, wanted_set), None
        for frame in frames:
            position = frame.pts
            if position is None:
                return found  # no timestamps on decoded frames: match by position instead
            if position in wanted_set and position not in found:
                found[position] = to_model_size(_rgb(frame), size)
            if position >= target:
                break
        else:
            return found
    return found


def _decode_by_position(path: Path, index: np.ndarray, size: int | None) -> np.ndarray:
    """Frames at positions ``index`` (sorted) of the decoded sequence, from one forward pass."""
    wanted = {int(i): k for k, i in enumerate(index)}
    out: list[np.ndarray | None] = [None] * len(index)
    with open_video(path) as container:
        for position, frame in enumerate(_frames(path, container, video_stream(path, container))):
            if position in wanted:
                out[wanted[position]] = to_model_size(_rgb(frame), size)
                if position == index[-1]:
                    break
    if any(frame is None for frame in out):
        decoded = sum(frame is not None for frame in out)
        raise MediaError(
            f"{path}: truncated or corrupt: decoding gave {decoded} of the {len(index)} frames "
            "its packets promise"
        )
    return np.stack(out)


def _frames(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    wanted: set[int] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order. With ``wanted`` (packet timestamps), the decoder
    skips the frames no other frame references unless they are wanted: decoding towards a picked
    frame then costs only the reference frames on the way."""
    context = stream.codec_context
    try:
        for packet in container.demux(stream):
            if wanted is not None:
                time = packet.pts if packet.pts is not None else packet.dts
                keep = packet.size == 0 or time in wanted
                context.skip_frame = "DEFAULT" if keep else "NONREF"
            yield from stream.decode(packet)
    except av.FFmpegError as err:
        raise MediaError(f"{path}: truncated or corrupt video data ({err})") from err


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")
