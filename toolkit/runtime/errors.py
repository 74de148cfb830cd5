"""Typed errors. Every audio error names the file and says what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from emo_toolkit.runtime.rules import REASON


class EmoToolkitError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class RankZeroFailed(EmoToolkitError):
    """Under torchrun: rank 0 stopped with an error (which it reports), so this rank stops."""


class AudioError(EmoToolkitError, ValueError):
    """A file that cannot be used as a clip. `reason` is a short stable code."""

    reason = "bad-audio"

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # travels intact between DataLoader worker processes
        return (type(self), (self.path, self.problem))


class FileFailedError(AudioError):
    """A file whose processing failed in a way no other reason names (a bug of ours or of a
    library): still that file's error, so the other files go on."""

    reason = "failed"


def per_file_error(path: str | Path, e: Exception) -> AudioError:
    """`e` as the error of one file: every per-file failure is a row or a skip with a reason,
    whatever the exception's type."""
    return e if isinstance(e, AudioError) else FileFailedError(path, f"{type(e).__name__}: {e}")


class UnreadableFileError(AudioError):
    """Missing, not a regular file, or not permitted to read."""

    reason = "unreadable"


class EmptyFileError(AudioError):
    """The file has 0 bytes."""

    reason = "empty-file"


class CorruptAudioError(AudioError):
    """libsndfile does not recognise or cannot decode the contents."""

    reason = "corrupt"


class TruncatedAudioError(AudioError):
    """The header promises more audio data than the file holds."""

    reason = "truncated"


class ZeroLengthAudioError(AudioError):
    """A valid header with no samples after it."""

    reason = REASON["zero_length"]


class NonFiniteAudioError(AudioError):
    """Samples that are NaN or infinite."""

    reason = REASON["non_finite"]


class UnsupportedRateError(AudioError):
    """A sample rate outside the supported range (emo_toolkit.runtime.audio.MIN_RATE..MAX_RATE)."""

    reason = REASON["unsupported_rate"]


class TooLongAudioError(AudioError):
    """Longer than one clip may be (emo_toolkit.runtime.audio.MAX_SECONDS)."""

    reason = REASON["too_long"]


class OutOfRangeAudioError(AudioError):
    """Finite samples far beyond full scale, which would overflow inside the model."""

    reason = REASON["out_of_range"]


class TooShortAudioError(AudioError):
    """Fewer samples than the extractor's convolution stack needs (the reject policy)."""

    reason = REASON["too_short"]


class NonFiniteError(EmoToolkitError):
    """A loss, weight or output that must be finite is NaN or infinite."""


class ArtifactError(EmoToolkitError):
    """An exported artifact that cannot be opened, or whose metadata is not the toolkit's."""


class InferenceError(EmoToolkitError):
    """The model failed on an input it accepted (out of memory, a malformed output)."""


class MissingDependencyError(EmoToolkitError):
    """A feature that needs a package this install does not have (an extra of emo-toolkit)."""


def require_extra(module: str, extra: str, what: str) -> None:
    """Import `module` or say which extra of emo-toolkit brings it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} needs {module}, which this install does not have: "
            f"pip install 'emo-toolkit[{extra}]'") from e


class DeviceError(EmoToolkitError):
    """A device that this machine does not have."""


class DatasetError(EmoToolkitError, ValueError):
    """A dataset that cannot be read as a whole (not one bad file: those are skipped)."""


class SplitError(EmoToolkitError, ValueError):
    """A split that cannot be made as asked."""


class SpeakerOverlapError(SplitError):
    """A speaker would sit in both train and test."""

    def __init__(self, speakers: list[str], train_name: str = "train", test_name: str = "test"):
        self.speakers = sorted(speakers)
        self._parts = (train_name, test_name)
        shown = ", ".join(self.speakers[:10]) + (" ..." if len(self.speakers) > 10 else "")
        super().__init__(
            f"{len(self.speakers)} speaker(s) would be in both {train_name} and {test_name}: "
            f"{shown}. Use a speaker-independent split, or allow the overlap explicitly "
            "(allow_speaker_overlap=True / --allow-speaker-overlap) if you really mean it."
        )

    def __reduce__(self):
        return (type(self), (self.speakers, *self._parts))


class SpeakerUnknownWarning(UserWarning):
    """Speakers are unknown, so a split cannot be proven speaker-independent."""


class ExportError(EmoToolkitError):
    """An export that could not be written."""
