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
 *   EmoRecognizer *r = EmoRecognizerCreate("model.onnx", "cpu", &error);
 *   if (!r) { fprintf(stderr, "%s\n", error); EmoFreeString(error); return 1; }
 *   EmoResult *result = EmoClassify(r, samples, count, 16000, &error);
 *   if (result) { puts(EmoRecognizerLabel(r, result->label)); EmoResultDestroy(result); }
 *   else { fprintf(stderr, "%s\n", error); EmoFreeString(error); }
 *   EmoRecognizerDestroy(r);
 *
 * Ownership: every pointer a function returns is owned by the caller until it is given
 * back to its pair: EmoRecognizerCreate / EmoRecognizerDestroy, EmoClassify /
 * EmoResultDestroy, any `char **error` message / EmoFreeString. Strings returned as
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

#if defined(_WIN32)
#define EMO_API __declspec(dllexport)
#else
#define EMO_API __attribute__((visibility("default")))
#endif

/* An artifact loaded for inference. Opaque. */
typedef struct EmoRecognizer EmoRecognizer;

/* The result of classifying one clip. */
typedef struct EmoResult {
  int32_t label;              /* index of the most probable label */
  int32_t num_labels;         /* entries in probabilities and logits */
  const float *probabilities; /* softmax over labels, in the artifact's label order */
  const float *logits;        /* the model's raw scores, same order */
} EmoResult;

/* The library's version, e.g. "0.1.0". Static storage: do not free. */
EMO_API const char *EmoVersion(void);

/* Loads `artifact_path` (a .onnx, .torchscript.pt, .aoti.pt2 or .pte made by emo-export) on
 * `device` (NULL means "cpu"; libtorch: "cpu", "cuda" or "cuda:N"; OpenVINO: "cpu" or an
 * OpenVINO device name such as "GPU" or "AUTO"). Returns NULL on failure and sets *error:
 * missing or unreadable file, a file no backend of this build runs, not an emo-toolkit
 * artifact, no metadata, an artifact the runtime cannot load, or a device this build or
 * machine does not have. */
EMO_API EmoRecognizer *EmoRecognizerCreate(const char *artifact_path, const char *device,
                                           char **error);

/* Frees the recognizer and every string it owns. NULL is allowed. */
EMO_API void EmoRecognizerDestroy(EmoRecognizer *recognizer);

/* How many labels the model has (>= 2). */
EMO_API int32_t EmoRecognizerNumLabels(const EmoRecognizer *recognizer);

/* The name of label `index` (0 <= index < num_labels), or NULL when out of range.
 * Owned by the recognizer. */
EMO_API const char *EmoRecognizerLabel(const EmoRecognizer *recognizer, int32_t index);

/* The sample rate the artifact takes (Hz). Clips at any other rate are rejected: export
 * with `emo-export --input-sample-rate R` to take rate R (resampling inside the graph). */
EMO_API int32_t EmoRecognizerSampleRate(const EmoRecognizer *recognizer);

/* The shortest clip, in samples at the artifact's rate, the model accepts. */
EMO_API int32_t EmoRecognizerMinSamples(const EmoRecognizer *recognizer);

/* "openvino", "torchscript" or "aoti". Owned by the recognizer. */
EMO_API const char *EmoRecognizerBackend(const EmoRecognizer *recognizer);

/* The artifact's full metadata as JSON (labels, extractor, parity report, ...).
 * Owned by the recognizer. */
EMO_API const char *EmoRecognizerMetadataJson(const EmoRecognizer *recognizer);

/* Classifies one mono clip of `count` float samples in [-1, 1] at `sample_rate` Hz.
 * Returns NULL and sets *error when the recognizer or samples are NULL, count is below
 * the minimum (empty audio included), the rate differs from the artifact's, a sample
 * is NaN or infinite, or the runtime fails. Free the result with EmoResultDestroy. */
EMO_API EmoResult *EmoClassify(EmoRecognizer *recognizer, const float *samples, int64_t count,
                               int32_t sample_rate, char **error);

/* Frees a result. NULL is allowed. */
EMO_API void EmoResultDestroy(EmoResult *result);

/* Frees an error message. NULL is allowed. */
EMO_API void EmoFreeString(char *s);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMO_TOOLKIT_C_API_H_ */
