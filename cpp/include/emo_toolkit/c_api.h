/* emo-toolkit C API: classify speech emotion with an artifact made by emo-export.
 *
 * Artifacts, each run by a backend of this library when the build has it:
 *   model.onnx (`emo-export --format onnx`) with OpenVINO;
 *   model.torchscript.pt (`--format torchscript`) and model.aoti.pt2 (`--format pt2`) with
 *   libtorch;
 *   model.pte (`--format executorch`) with the ExecuTorch runtime (one clip per call).
 * Labels, sample rate and minimum length are read from the artifact's own metadata.
 *
 * Usage (see cpp/examples/emo_classify.c for a complete program):
 *
 *   char *error = NULL;
 *   EmoRecognizerConfig config = {0};
 *   config.model = "model.onnx";
 *   EmoRecognizer *r = EmoRecognizerCreate(&config, &error);
 *   if (!r) { fprintf(stderr, "%s\n", error); EmoFreeString(error); return 1; }
 *   EmoResult *result = EmoClassify(r, samples, count, 16000, &error);
 *   if (result) { puts(EmoRecognizerLabel(r, result->label)); EmoResultDestroy(result); }
 *   else { fprintf(stderr, "%s\n", error); EmoFreeString(error); }
 *   EmoRecognizerDestroy(r);
 *
 * Ownership: every pointer a function returns is owned by the caller until it is given
 * back to its pair: EmoRecognizerCreate / EmoRecognizerDestroy, EmoClassify /
 * EmoResultDestroy, EmoRecordingJobCreate / EmoRecordingJobDestroy, EmoRecordingJobResult
 * and EmoClassifyRecording / EmoRecordingDestroy, EmoStreamCreate / EmoStreamDestroy,
 * EmoStreamDecode and EmoRecognizerDecodeStreams / EmoWindowResultDestroy, any
 * `char **error` message / EmoFreeString. Strings returned as
 * `const char *` by EmoRecognizer* accessors are owned by the recognizer and live until
 * EmoRecognizerDestroy. Each Destroy/Free accepts NULL.
 *
 * Errors: functions that can fail return NULL (or a negative number) and, when `error`
 * is not NULL, set *error to a NUL-terminated message naming the problem; on success
 * *error is left untouched. No function aborts the process on bad input.
 *
 * Thread safety: one recognizer may be shared by threads; EmoClassify calls on it are
 * serialised by the recognizer (for parallel inference, create one recognizer per
 * thread). EmoRecognizerDestroy must not run while another thread uses the recognizer.
 *
 * Security: TorchScript and AOTInductor archives can run code when loaded. Load only
 * artifacts you trust.
 */
#ifndef EMO_TOOLKIT_C_API_H_
#define EMO_TOOLKIT_C_API_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported when the library is built (EMO_TOOLKIT_BUILDING), imported when used. */
#if defined(_WIN32)
#if defined(EMO_TOOLKIT_BUILDING)
#define EMO_API __declspec(dllexport)
#else
#define EMO_API __declspec(dllimport)
#endif
#elif defined(EMO_TOOLKIT_BUILDING)
#define EMO_API __attribute__((visibility("default")))
#else
#define EMO_API
#endif

/* An artifact loaded for inference. Opaque. */
typedef struct EmoRecognizer EmoRecognizer;

/* The result of classifying one clip. Probabilities are doubles in every result type
 * (clips, recordings, segments, windows): the digits emo-predict prints. */
typedef struct EmoResult {
  int32_t label;               /* index of the most probable label */
  int32_t num_labels;          /* entries in probabilities and logits */
  const double *probabilities; /* softmax over labels, in the artifact's label order */
  const float *logits;        /* the model's raw scores, same order */
  const char *precision;      /* what computed it: EmoRecognizerPrecision (recognizer-owned) */
} EmoResult;

/* What to open and how. Zero-initialise it, then set what you need: every NULL or 0 field
 * takes its default, so fields can be added without breaking callers. */
typedef struct EmoRecognizerConfig {
  const char *model;     /* required: an artifact (.onnx, .torchscript.pt, .aoti.pt2 or .pte
                            made by emo-export), or emo-bench's choice.json (the artifact it
                            chose for this machine, relative to the file's folder unless
                            absolute, with its device, precision and threads; the fields below
                            override them) */
  const char *device;    /* NULL: "cpu" (libtorch: "cpu", "cuda" or "cuda:N"; OpenVINO: "cpu"
                            or an OpenVINO device name such as "GPU" or "AUTO") */
  const char *precision; /* NULL or "fp32": compute in the precision the artifact was
                            exported in (an fp32 artifact in fp32, on every backend and CPU);
                            "bf16" / "fp16": OpenVINO computes an fp32 .onnx in bf16 (CPUs
                            with AVX512-BF16 or AMX-BF16) or fp16 (AVX512-FP16 or AMX-FP16);
                            refused elsewhere, and by the other backends */
  int32_t threads;       /* 0: the runtime's default (every core it sees); 1-1024: OpenVINO's
                            threads for this recognizer; libtorch's and ExecuTorch's pools are
                            the process's, so there it sets them for every recognizer */
} EmoRecognizerConfig;

/* The library's version, e.g. "0.1.0". Static storage: do not free. */
EMO_API const char *EmoVersion(void);

/* Opens `config->model` with the backend that runs its file type (the name's ending; a
 * choice file's runtime is the Python one, and here an .onnx runs on OpenVINO). Returns
 * NULL on failure and sets *error: a NULL config or model, a missing or unreadable file,
 * not a regular file, a file no backend of this build runs, not an emo-toolkit artifact, no
 * metadata or metadata that breaks its rules (labels, rates, limits), a choice file that is
 * not one, an artifact the runtime cannot load or verify, a precision or threads out of
 * range, or a device this build or machine does not have. */
EMO_API EmoRecognizer *EmoRecognizerCreate(const EmoRecognizerConfig *config, char **error);

/* Frees the recognizer and every string it owns. NULL is allowed. */
EMO_API void EmoRecognizerDestroy(EmoRecognizer *recognizer);

/* How many labels the model has (>= 2). */
EMO_API int32_t EmoRecognizerNumLabels(const EmoRecognizer *recognizer);

/* The name of label `index` (0 <= index < num_labels), or NULL when out of range.
 * Owned by the recognizer. */
EMO_API const char *EmoRecognizerLabel(const EmoRecognizer *recognizer, int32_t index);

/* The sample rate the artifact's graph takes (Hz). EmoClassify and the recording functions
 * take any rate from 4000 to 384000 Hz and resample to this one; an artifact exported with
 * `emo-export --input-sample-rate R` takes R itself (resampling inside the graph). */
EMO_API int32_t EmoRecognizerSampleRate(const EmoRecognizer *recognizer);

/* The shortest clip, in samples at the artifact's rate, the model accepts. */
EMO_API int32_t EmoRecognizerMinSamples(const EmoRecognizer *recognizer);

/* The longest clip, in samples at the artifact's rate, the artifact takes (0: any). */
EMO_API int64_t EmoRecognizerMaxSamples(const EmoRecognizer *recognizer);

/* The precision the model computes in: "fp32", "bf16", "fp16" or "int8" (for OpenVINO,
 * read back from the compiled model). Owned by the recognizer. */
EMO_API const char *EmoRecognizerPrecision(const EmoRecognizer *recognizer);

/* The precision the artifact was exported in (its metadata's "precision"); differs from
 * EmoRecognizerPrecision when a runtime precision was asked for. Owned by the recognizer. */
EMO_API const char *EmoRecognizerExportedPrecision(const EmoRecognizer *recognizer);

/* 1 when the artifact's extractor had UNTRAINED (random) weights: its results are a smoke
 * test, not predictions; 0 otherwise; -1 for NULL. */
EMO_API int32_t EmoRecognizerUntrained(const EmoRecognizer *recognizer);

/* "openvino", "torchscript", "aoti" or "executorch". Owned by the recognizer. */
EMO_API const char *EmoRecognizerBackend(const EmoRecognizer *recognizer);

/* The artifact's full metadata as JSON (labels, extractor, parity report, ...).
 * Owned by the recognizer. */
EMO_API const char *EmoRecognizerMetadataJson(const EmoRecognizer *recognizer);

/* Classifies one mono clip of `count` float samples in [-1, 1] at `sample_rate` Hz (any
 * whole rate from 4000 to 384000, resampled to the artifact's as the Python runtime does).
 * Returns NULL and sets *error when the recognizer or samples are NULL, count is below the
 * minimum (empty audio included), the clip is longer than 60 s or the artifact's maximum,
 * the rate is unsupported, a sample is NaN or infinite or beyond +-100 (full scale is 1),
 * or the runtime fails. Free the result with EmoResultDestroy. */
EMO_API EmoResult *EmoClassify(EmoRecognizer *recognizer, const float *samples, int64_t count,
                               int32_t sample_rate, char **error);

/* Frees a result. NULL is allowed. */
EMO_API void EmoResultDestroy(EmoResult *result);

/* --- recordings of any length and rate --------------------------------------------------
 * A recording is resampled to the artifact's rate (the Python runtime's resampler) and cut
 * at pauses into segments of at most `window_s` seconds (its segmenter: the same cut
 * points); each segment is classified, and the recording's probabilities are the
 * segments' duration-weighted mean. Feed it in blocks, so memory does not grow with its
 * length: EmoRecordingJobCreate, EmoRecordingJobAcceptWaveform per block,
 * EmoRecordingJobInputFinished, EmoRecordingJobResult. */

/* One segment: [start, end) in seconds from the recording's start. */
typedef struct EmoSegment {
  double start;
  double end;
  int32_t label;              /* index of the most probable label */
  const double *probabilities; /* num_labels entries, in the artifact's label order */
} EmoSegment;

typedef struct EmoRecording {
  int32_t label;              /* the most probable label of `probabilities` */
  int32_t num_labels;
  const double *probabilities; /* the segments' duration-weighted mean (double: the digits
                                 emo-predict prints) */
  double duration;            /* seconds: the end of the last segment */
  int32_t num_segments;
  const EmoSegment *segments;
  const char *precision;      /* as EmoResult's (recognizer-owned) */
} EmoRecording;

/* A recording being fed. Opaque. */
typedef struct EmoRecordingJob EmoRecordingJob;

/* A window of 0 seconds: the artifact's default (EmoRecognizerDefaultWindow), as
 * emo-predict's when --window is not given. */
#define EMO_DEFAULT_WINDOW_S 0.0

/* The default window (seconds) of recordings and streams: the 90th percentile of the
 * durations of the clips the model was trained on (the metadata's training_durations; at
 * least 1 s; 10 s for an artifact that records none), at most what the artifact takes.
 * -1 for NULL. */
EMO_API double EmoRecognizerDefaultWindow(const EmoRecognizer *recognizer);

/* A recording at `sample_rate` Hz (any whole rate from 4000 to 384000) cut into segments of
 * at most `window_s` seconds (0 < window_s <= 60, or EMO_DEFAULT_WINDOW_S; longer than four
 * minimum clips), fed with the verbs of a stream: EmoRecordingJobAcceptWaveform per block,
 * EmoRecordingJobInputFinished, then EmoRecordingJobResult. The recognizer must outlive the
 * job. NULL and *error on bad arguments. */
EMO_API EmoRecordingJob *EmoRecordingJobCreate(EmoRecognizer *recognizer, int32_t sample_rate,
                                               double window_s, char **error);

/* Feeds `count` mono samples; the segments they complete are classified. Returns 0, or -1
 * and sets *error: a sample is NaN, infinite or beyond +-100, a segment's inference failed,
 * or the input has finished. After an error the job only takes EmoRecordingJobDestroy. */
EMO_API int32_t EmoRecordingJobAcceptWaveform(EmoRecordingJob *job, const float *samples,
                                              int64_t count, char **error);

/* Ends the input: the last segments are classified. 0, or -1 and *error when their
 * inference failed. */
EMO_API int32_t EmoRecordingJobInputFinished(EmoRecordingJob *job, char **error);

/* The recording's result, after EmoRecordingJobInputFinished. NULL and *error when the input
 * has not finished, the job failed, or it held no samples or fewer than the model's minimum.
 * Free it with EmoRecordingDestroy; the job stays the caller's (EmoRecordingJobDestroy). */
EMO_API EmoRecording *EmoRecordingJobResult(const EmoRecordingJob *job, char **error);

/* Frees a job. NULL is allowed. */
EMO_API void EmoRecordingJobDestroy(EmoRecordingJob *job);

/* A whole recording in one call: Create, one AcceptWaveform, InputFinished, Result. */
EMO_API EmoRecording *EmoClassifyRecording(EmoRecognizer *recognizer, const float *samples,
                                           int64_t count, int32_t sample_rate,
                                           double window_s, char **error);

/* Frees a recording's result. NULL is allowed. */
EMO_API void EmoRecordingDestroy(EmoRecording *recording);

/* --- live streams --------------------------------------------------------------------
 * A stream per audio source, as sherpa-onnx's online streams: accept blocks of any size,
 * decode the windows that are ready, finish the input. Window k covers [k * hop, k * hop
 * + window) seconds of the stream (resampled to the artifact's rate); when the input ends,
 * the last `window` seconds are one more window if samples after the last window remain.
 * Each window's result equals classifying its samples as a clip, and Python's
 * Recognizer.stream gives the same windows and numbers. The stream keeps only the samples
 * windows still need: memory stays at about one window plus one block.
 *
 *   EmoStream *s = EmoStreamCreate(r, 16000, NULL, &error);   (NULL: default options)
 *   while (read a block) {
 *     EmoStreamAcceptWaveform(s, block, n, &error);
 *     while (EmoStreamNumReady(s) > 0) { EmoWindowResult *w = EmoStreamDecode(s, &error);
 *                                       ...; EmoWindowResultDestroy(w); }
 *   }
 *   EmoStreamInputFinished(s);  then decode what is ready, and EmoStreamDestroy(s).
 *
 * A caller that cannot keep up calls EmoStreamSkip to drop all ready windows but the
 * newest: results carry their window's index, so skips show as gaps. */

/* How to stream. Zero-initialise it: every 0 field takes its default. */
typedef struct EmoStreamOptions {
  double window_s;  /* 0: EmoRecognizerDefaultWindow; else 0 < window_s <= 60 */
  double hop_s;     /* 0: half the window; else 0 < hop_s <= window */
  double smoothing; /* 0: none; else the weight (at most 1) of the newest window in an
                       exponential smoothing of the probabilities */
} EmoStreamOptions;

/* One window's result. */
typedef struct EmoWindowResult {
  int64_t index;               /* the window's number from 0 (skipped ones leave gaps) */
  double start;                /* [start, end) in seconds from the stream's start */
  double end;
  int32_t label;               /* index of the most probable label */
  int32_t num_labels;
  const double *probabilities; /* softmax over labels, in the artifact's label order */
  const float *logits;         /* the model's raw scores */
  int32_t smoothed_label;      /* -1 without smoothing */
  const double *smoothed;      /* the smoothed probabilities; NULL without smoothing */
  const char *precision;       /* as EmoResult's (recognizer-owned) */
} EmoWindowResult;

/* A live stream. Opaque. */
typedef struct EmoStream EmoStream;

/* A stream of mono audio at `sample_rate` Hz (4000 to 384000) on `recognizer`, which must
 * outlive it. NULL and *error on bad arguments. */
EMO_API EmoStream *EmoStreamCreate(EmoRecognizer *recognizer, int32_t sample_rate,
                                   const EmoStreamOptions *options, char **error);

/* Takes `count` mono samples (the checks of EmoClassify: NaN, infinite or beyond +-100 are
 * refused, with the frame's number in the stream). Returns 0, or -1 and *error; a refused
 * block is not taken, and the stream goes on with the next. */
EMO_API int32_t EmoStreamAcceptWaveform(EmoStream *stream, const float *samples,
                                        int64_t count, char **error);

/* Ends the input: the windows left (and the last one) become ready. */
EMO_API void EmoStreamInputFinished(EmoStream *stream);

/* How many windows are ready to decode; -1 for NULL. */
EMO_API int32_t EmoStreamNumReady(const EmoStream *stream);

/* Classifies the oldest ready window. NULL and *error when none is ready or inference
 * fails. Free the result with EmoWindowResultDestroy. */
EMO_API EmoWindowResult *EmoStreamDecode(EmoStream *stream, char **error);

/* Decodes the oldest ready window of each of `count` streams of `recognizer` together, as
 * sherpa-onnx's DecodeMultipleOnlineStreams: windows of equal length share one call of the
 * backend (OpenVINO runs them as one batch, up to 16), which is what serving many live
 * sources on one model needs. results[i] (an array of `count` the caller provides) gets
 * stream i's window, or NULL when it had none ready; each stream's windows equal decoding
 * it alone with EmoStreamDecode (within float rounding of a batched call). Returns how many
 * windows were decoded; call again while any stream has windows ready. -1 and *error on
 * bad arguments (a NULL stream, one given twice or of another recognizer) or when the
 * model fails on a window (alone, after its batch failed; the message starts "stream i:");
 * then every results[i] is NULL and no stream changed. */
EMO_API int32_t EmoRecognizerDecodeStreams(EmoRecognizer *recognizer,
                                           EmoStream *const *streams, int32_t count,
                                           EmoWindowResult **results, char **error);

/* Drops all ready windows but the newest `keep`; how many were dropped (-1: bad args). */
EMO_API int64_t EmoStreamSkip(EmoStream *stream, int32_t keep);

/* The stream's window and hop in seconds (as used: at the artifact's rate). */
EMO_API double EmoStreamWindow(const EmoStream *stream);
EMO_API double EmoStreamHop(const EmoStream *stream);

EMO_API void EmoWindowResultDestroy(EmoWindowResult *result);
EMO_API void EmoStreamDestroy(EmoStream *stream);

/* The reason code of the last error this thread got from the library, as emo-predict
 * names it in its error rows: "too-short", "non-finite", "out-of-range",
 * "unsupported-rate", "zero-length", "inference-failed", "non-finite-output",
 * "bad-argument" or "artifact". Static storage. */
EMO_API const char *EmoLastErrorReason(void);

/* Frees an error message. NULL is allowed. */
EMO_API void EmoFreeString(char *s);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMO_TOOLKIT_C_API_H_ */
