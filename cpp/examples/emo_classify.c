/* emo_classify: classify audio files with an emo-toolkit artifact, printing exactly the
 * JSON lines `emo-predict ARTIFACT FILE...` prints (the same fields, digits, reason codes,
 * untrained flag and escaped names) with the same exit status.
 *
 *   emo_classify [options] ARTIFACT FILE...
 *
 * ARTIFACT: model.onnx (OpenVINO), model.torchscript.pt or model.aoti.pt2 (libtorch),
 * model.pte (ExecuTorch), as this build has them. FILE: any format libsndfile reads (WAV
 * only in a build without it), at any rate from 4 to 384 kHz, of any length: each file is
 * read a block at a time, resampled to the artifact's rate and cut at pauses into
 * segments of at most --window seconds, as emo-predict does.
 *
 * ARTIFACT may also be emo-bench's choice.json (the artifact it chose, with its precision
 * and threads; the options below are then not applied).
 *
 * Options: --device D, --precision fp32|bf16|fp16 (bf16, fp16: OpenVINO computes an fp32
 * .onnx so, on a CPU with those units), --threads N (the runtime's threads; default: every
 * core), --window S (default 10), --segments (a row per segment before each file's row),
 * --repeat N (classify each file N times; adds "latency_ms", the median, "first_ms" and
 * "repeats" to its row), --version, --help. --window's default is the artifact's
 * (EmoRecognizerDefaultWindow: from the durations of the training clips).
 *
 * --stream: classify live audio from stdin window by window, printing the JSON lines
 * `emo-predict ARTIFACT --stream` prints, each flushed as soon as its window is done:
 * a WAV stream, or raw samples with --format s16le|s24le|s32le|f32le, --rate R and
 * --channels C; --window, --hop (default half the window), --smoothing A (exponential,
 * A on the newest window) and --max-delay S (default 2: when more than S seconds of
 * complete windows wait, skip to the newest; 0, and stdin redirected from a regular
 * file, never skip). With --precision bf16 or fp16 every row also
 * says "precision", as emo-predict --runtime openvino --precision bf16 writes it.
 *
 * Exit status: 0 when every file was classified, 1 when any failed or the artifact does
 * not load, 2 on a usage error (a missing artifact included).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audio.h"
#include "pcm.h"
#include "emo_toolkit/c_api.h"

#define BLOCK_SECONDS 4 /* decoded at a time, as the Python runtime's read_blocks */

static const char *USAGE =
    "usage: emo_classify [--device DEVICE] [--precision fp32|bf16|fp16] [--threads N]\n"
    "                    [--window S] [--segments] [--repeat N] ARTIFACT FILE...\n"
    "       emo_classify --stream [--format wav|s16le|s24le|s32le|f32le] [--rate R]\n"
    "                    [--channels C] [--window S] [--hop S] [--smoothing A]\n"
    "                    [--max-delay S] [...] ARTIFACT < audio\n";

/* --- JSON as Python's json.dumps writes it (ensure_ascii) -------------------------------- */

/* The next code point of UTF-8 text at *p (advancing it), or -1 for an invalid byte (then
 * *p advances by one byte). */
static long next_code_point(const unsigned char **p) {
  const unsigned char *s = *p;
  int length = s[0] < 0x80 ? 1 : (s[0] >> 5) == 0x6 ? 2 : (s[0] >> 4) == 0xE ? 3
               : (s[0] >> 3) == 0x1E ? 4 : 0;
  long cp = length == 1 ? s[0] : length ? s[0] & (0x7F >> length) : 0;
  for (int k = 1; k < length; ++k) {
    if ((s[k] & 0xC0) != 0x80) {
      length = 0;
      break;
    }
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  static const long smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (length == 0 || cp < smallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *p += 1;
    return -1;
  }
  *p += length;
  return cp;
}

/* A string as json.dumps writes it; bytes that are not UTF-8 first become "\xNN" text, as
 * the runtime's printable() makes file names. */
static void json_string(FILE *out, const char *text) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)text; *p;) {
    const unsigned char byte = *p;
    const long cp = next_code_point(&p);
    if (cp < 0) fprintf(out, "\\\\x%02x", byte);
    else if (cp == '"') fputs("\\\"", out);
    else if (cp == '\\') fputs("\\\\", out);
    else if (cp == '\n') fputs("\\n", out);
    else if (cp == '\r') fputs("\\r", out);
    else if (cp == '\t') fputs("\\t", out);
    else if (cp == '\b') fputs("\\b", out);
    else if (cp == '\f') fputs("\\f", out);
    else if (cp >= 0x20 && cp <= 0x7E) fputc((int)cp, out);
    else if (cp < 0x10000) fprintf(out, "\\u%04lx", cp);
    else fprintf(out, "\\u%04lx\\u%04lx", 0xD800 + ((cp - 0x10000) >> 10),
                 0xDC00 + ((cp - 0x10000) & 0x3FF));
  }
  fputc('"', out);
}

/* Python's round(x, digits): the double nearest the correctly rounded decimal. */
static double py_round(double x, int digits) {
  char text[64];
  snprintf(text, sizeof text, "%.*f", digits, x);
  return strtod(text, NULL);
}

/* A float as Python's repr writes it: the shortest digits that read back the same, in
 * fixed notation from 1e-4 to 1e16 (with ".0" when whole), scientific otherwise. */
static void py_float(FILE *out, double x) {
  char sci[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    snprintf(sci, sizeof sci, "%.*e", precision - 1, x);
    if (strtod(sci, NULL) == x) break;
  }
  char digits[32] = {0};
  int n = 0;
  const char *s = sci;
  const int negative = *s == '-';
  if (negative) ++s;
  for (; *s && *s != 'e'; ++s)
    if (*s != '.') digits[n++] = *s;
  const int exponent = atoi(s + 1);
  while (n > 1 && digits[n - 1] == '0') digits[--n] = 0;
  if (negative) fputc('-', out);
  if (exponent < -4 || exponent >= 16) {
    fprintf(out, "%c", digits[0]);
    if (n > 1) fprintf(out, ".%s", digits + 1);
    fprintf(out, "e%c%02d", exponent < 0 ? '-' : '+', abs(exponent));
  } else if (exponent < 0) {
    fputs("0.", out);
    for (int k = 0; k < -exponent - 1; ++k) fputc('0', out);
    fputs(digits, out);
  } else if (n <= exponent + 1) {
    fputs(digits, out);
    for (int k = 0; k < exponent + 1 - n; ++k) fputc('0', out);
    fputs(".0", out);
  } else {
    fprintf(out, "%.*s.%s", exponent + 1, digits, digits + exponent + 1);
  }
}

/* A path as Python's Path prints it: no empty or "." parts, no trailing slash. */
static void python_path(const char *path, char *out, size_t size) {
  size_t used = 0;
  out[0] = 0;
  if (path[0] == '/') out[used++] = '/', out[used] = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') ++p;
    const char *end = strchr(p, '/');
    const size_t length = end ? (size_t)(end - p) : strlen(p);
    const int skip = length == 0 || (length == 1 && p[0] == '.');
    if (!skip && used + length + 2 < size) {
      if (used && out[used - 1] != '/') out[used++] = '/';
      memcpy(out + used, p, length);
      used += length;
      out[used] = 0;
    }
    p += length;
  }
  if (used == 0) snprintf(out, size, ".");
}

/* --- rows -------------------------------------------------------------------------------- */

/* `, "label": L, "probabilities": {...}`: a prediction's fields, as Prediction.to_json
 * writes them after what comes before. */
static void prediction_fields(FILE *out, EmoRecognizer *r, int32_t label, const double *p) {
  fputs(", \"label\": ", out);
  json_string(out, EmoRecognizerLabel(r, label));
  fputs(", \"probabilities\": {", out);
  for (int32_t k = 0; k < EmoRecognizerNumLabels(r); ++k) {
    fputs(k ? ", " : "", out);
    json_string(out, EmoRecognizerLabel(r, k));
    fputs(": ", out);
    py_float(out, py_round(p[k], 6));
  }
  fputs("}", out);
}

/* The row's last field: "untrained", and "precision" when asked for at run time (bf16, fp16),
 * so rows computed in reduced precision say so. */
static int runtime_precision = 0;

static void tail(FILE *out, EmoRecognizer *r) {
  fprintf(out, ", \"untrained\": %s", EmoRecognizerUntrained(r) == 1 ? "true" : "false");
  if (runtime_precision) {
    fputs(", \"precision\": ", out);
    json_string(out, EmoRecognizerPrecision(r));
  }
}

static void error_row(EmoRecognizer *r, const char *name, const char *reason,
                      const char *message) {
  printf("{\"file\": ");
  json_string(stdout, name);
  printf(", \"error\": ");
  json_string(stdout, reason);
  printf(", \"message\": ");
  json_string(stdout, message);
  tail(stdout, r);
  printf("}\n");
}

static void recording_rows(EmoRecognizer *r, const char *name, const EmoRecording *rec,
                           int segments, const double *times, int repeat) {
  for (int32_t s = 0; segments && s < rec->num_segments; ++s) {
    const EmoSegment *part = &rec->segments[s];
    printf("{\"file\": ");
    json_string(stdout, name);
    printf(", \"segment\": %d, \"start\": ", s);
    py_float(stdout, py_round(part->start, 3));
    printf(", \"end\": ");
    py_float(stdout, py_round(part->end, 3));
    prediction_fields(stdout, r, part->label, part->probabilities);
    tail(stdout, r);
    printf("}\n");
  }
  printf("{\"file\": ");
  json_string(stdout, name);
  prediction_fields(stdout, r, rec->label, rec->probabilities);
  printf(", \"duration\": ");
  py_float(stdout, py_round(rec->duration, 3));
  printf(", \"segments\": %d", rec->num_segments);
  tail(stdout, r);
  if (repeat > 1)
    printf(", \"latency_ms\": %.3f, \"first_ms\": %.3f, \"repeats\": %d", times[0], times[1],
           repeat);
  printf("}\n");
}

/* --- classifying a file ------------------------------------------------------------------ */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The file read in blocks into a recording job; NULL with a reason and message. */
static EmoRecording *classify_once(EmoRecognizer *r, const char *path, double window,
                                   const char **reason, char *message, size_t size) {
  AudioError audio_error = {0};
  AudioFile *file = audio_open(path, &audio_error);
  if (!file) {
    *reason = audio_error.reason;
    snprintf(message, size, "%s", audio_error.message);
    return NULL;
  }
  char *error = NULL;  /* the library checks the file's rate, as the runtime does */
  EmoRecordingJob *job = EmoRecordingJobCreate(r, audio_sample_rate(file), window, &error);
  const int64_t block = (int64_t)BLOCK_SECONDS * audio_sample_rate(file);
  float *mono = job ? malloc((size_t)block * sizeof(float)) : NULL;
  EmoRecording *result = NULL;
  int64_t got = 0;
  while (mono && (got = audio_read(file, mono, block, &audio_error)) > 0)
    if (EmoRecordingJobAcceptWaveform(job, mono, got, &error) != 0) break;
  if (!job || error) {
    *reason = EmoLastErrorReason();
    snprintf(message, size, "%s", error ? error : "out of memory");
  } else if (!mono) {
    *reason = "failed";
    snprintf(message, size, "out of memory");
  } else if (got < 0) {
    *reason = audio_error.reason;
    snprintf(message, size, "%s", audio_error.message);
  } else {
    if (EmoRecordingJobInputFinished(job, &error) == 0) result = EmoRecordingJobResult(job, &error);
    if (!result) {
      *reason = EmoLastErrorReason();
      snprintf(message, size, "%s", error ? error : "out of memory");
    }
  }
  EmoRecordingJobDestroy(job);
  EmoFreeString(error);
  free(mono);
  audio_close(file);
  return result;
}

/* Classifies one file (`repeat` times) and prints its rows; returns 1 when it failed. */
static int classify_file(EmoRecognizer *r, const char *path, double window, int segments,
                         int repeat) {
  char name[4096], message[1024];
  python_path(path, name, sizeof name);
  const char *reason = "failed";
  double *times = calloc((size_t)repeat, sizeof(double));
  EmoRecording *result = NULL;
  for (int i = 0; i < repeat && times; ++i) {
    EmoRecordingDestroy(result);
    const double start = now_ms();
    result = classify_once(r, path, window, &reason, message, sizeof message);
    times[i] = now_ms() - start;
    if (!result) break;
  }
  if (!result || !times) {
    error_row(r, name, times ? reason : "failed", times ? message : "out of memory");
    free(times);
    return 1;
  }
  double summary[2] = {0, times[0]};  /* the median; the first call, kept apart */
  qsort(times, (size_t)repeat, sizeof(double), compare_doubles);
  summary[0] = times[repeat / 2];
  recording_rows(r, name, result, segments, summary, repeat);
  EmoRecordingDestroy(result);
  free(times);
  return 0;
}

/* --- a live stream (--stream) ------------------------------------------------------------ */

#define STREAM_BLOCK_FRAMES 4096 /* read at a time: 0.26 s at 16 kHz */

typedef struct StreamArgs {
  const char *encoding;
  int32_t rate;
  int channels;
  EmoStreamOptions options;
  double max_delay; /* <= 0: every window is classified, however late */
} StreamArgs;

/* One window's JSON line, as emo-predict --stream writes it (WindowPrediction.to_json). */
static void window_row(EmoRecognizer *r, const EmoWindowResult *w, double alpha) {
  printf("{\"window\": %lld, \"start\": ", (long long)w->index);
  py_float(stdout, py_round(w->start, 3));
  printf(", \"end\": ");
  py_float(stdout, py_round(w->end, 3));
  prediction_fields(stdout, r, w->label, w->probabilities);
  printf(", \"untrained\": %s", EmoRecognizerUntrained(r) == 1 ? "true" : "false");
  if (w->smoothed) {
    printf(", \"smoothed\": {\"method\": \"exponential\", \"alpha\": ");
    py_float(stdout, alpha);
    prediction_fields(stdout, r, w->smoothed_label, w->smoothed);
    printf("}");
  }
  printf("}\n");
  fflush(stdout);
}

/* Classifies stdin window by window until it ends; returns the exit status. */
static int classify_stream(EmoRecognizer *r, const StreamArgs *args) {
  char message[512];
  PcmInput *input = pcm_open(0, args->encoding, args->rate, args->channels, message,
                             sizeof message);
  if (!input) {
    fprintf(stderr, "Error: %s\n", message);
    return 1;
  }
  char *error = NULL;
  EmoStream *stream = EmoStreamCreate(r, pcm_rate(input), &args->options, &error);
  float *mono = malloc(STREAM_BLOCK_FRAMES * sizeof(float));
  int status = 0;
  long long windows = 0, skipped = 0;
  if (!stream || !mono) {
    fprintf(stderr, "Error: %s\n", error ? error : "out of memory");
    status = 1;
  } else {
    /* a first call pays for the runtime's lazy set-up: here, not in the first window */
    const int64_t warm = (int64_t)(EmoStreamWindow(stream) * EmoRecognizerSampleRate(r) + 0.5);
    float *zeros = calloc((size_t)warm, sizeof(float));
    EmoResultDestroy(zeros ? EmoClassify(r, zeros, warm, EmoRecognizerSampleRate(r), NULL)
                           : NULL);
    free(zeros);
    fprintf(stderr, "streaming: %d Hz, %d channel(s); a %g s window every %g s\n",
            pcm_rate(input), pcm_channels(input), EmoStreamWindow(stream), EmoStreamHop(stream));
  }
  int ended = 0, failed = 0;
  while (status == 0) {
    /* before each window, everything that has arrived (waiting only when there is nothing
     * to do), so results are of the newest audio */
    for (int wait = !ended && EmoStreamNumReady(stream) == 0; !ended && !failed; wait = 0) {
      const int64_t got = pcm_read(input, mono, STREAM_BLOCK_FRAMES, wait, message,
                                   sizeof message);
      if (got == -2) break;
      if (got == 0) {
        ended = 1;
        EmoStreamInputFinished(stream);
        break;
      }
      if (got > 0 && EmoStreamAcceptWaveform(stream, mono, got, &error) != 0) {
        snprintf(message, sizeof message, "%s", error);
        EmoFreeString(error);
        error = NULL;
        failed = 1;
      }
      if (got < 0) failed = 1;  /* the error comes after the windows the blocks before it made */
    }
    const double hop = EmoStreamHop(stream);
    if (args->max_delay > 0 && (EmoStreamNumReady(stream) - 1) * hop > args->max_delay) {
      const int64_t count = EmoStreamSkip(stream, 1);
      skipped += count;
      fprintf(stderr, "skipped %lld window(s): the model is slower than the audio arrives\n",
              (long long)count);
    }
    if (EmoStreamNumReady(stream) == 0) {
      if (ended || failed) break;
      continue;
    }
    EmoWindowResult *w = EmoStreamDecode(stream, &error);
    if (!w) {
      fprintf(stderr, "Error: %s\n", error ? error : "out of memory");
      status = 1;
      break;
    }
    window_row(r, w, args->options.smoothing);
    ++windows;
    EmoWindowResultDestroy(w);
  }
  if (failed && status == 0) {
    fprintf(stderr, "Error: %s\n", message);
    status = 1;
  }
  if (status == 0)
    fprintf(stderr, "end of input: %lld window(s), %lld skipped\n", windows, skipped);
  EmoFreeString(error);
  EmoStreamDestroy(stream);
  free(mono);
  pcm_close(input);
  return status;
}

/* --- the command line -------------------------------------------------------------------- */

static int usage_error(const char *fmt, const char *value) {
  fprintf(stderr, "%s", USAGE);
  fprintf(stderr, "emo_classify: ");
  fprintf(stderr, fmt, value);
  fprintf(stderr, "\n");
  return 2;
}

static int parse_number(const char *text, double low, double high, double *value) {
  char *end = NULL;
  errno = 0;
  *value = strtod(text, &end);
  return (end == text || *end || errno || !(*value >= low && *value <= high)) ? -1 : 0;
}

int main(int argc, char **argv) {
  EmoRecognizerConfig config = {0};  /* NULL and 0: the defaults, or a choice file's */
  double window = EMO_DEFAULT_WINDOW_S, repeat = 1;
  int segments = 0, count = 0, options_end = 0, live = 0;
  StreamArgs stream = {"wav", 0, 1, {0, 0, 0}, 2.0};
  double number = 0;
  char **paths = calloc((size_t)argc, sizeof(char *));  /* ARTIFACT FILE..., in order */
  if (!paths) return 1;
  for (int i = 1; i < argc; ++i) {  /* options anywhere, as emo-predict takes them */
    const char *option = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (options_end || strncmp(option, "--", 2) != 0) {
      paths[count++] = argv[i];
      continue;
    }
    if (strcmp(option, "--") == 0) {
      options_end = 1;
    } else if (strcmp(option, "--version") == 0) {
      printf("emo_classify (emo-toolkit C API %s; audio: %s)\n", EmoVersion(), audio_reader());
      return 0;
    } else if (strcmp(option, "--help") == 0) {
      printf("%s", USAGE);
      return 0;
    } else if (strcmp(option, "--segments") == 0) {
      segments = 1;
    } else if (strcmp(option, "--stream") == 0) {
      live = 1;
    } else if (strcmp(option, "--format") == 0 && value) {
      stream.encoding = argv[++i];
    } else if (strcmp(option, "--rate") == 0 && value) {
      if (parse_number(argv[++i], 4000, 384000, &number) != 0 || number != (int32_t)number)
        return usage_error("--rate '%s': give a whole number of Hz from 4000 to 384000", value);
      stream.rate = (int32_t)number;
    } else if (strcmp(option, "--channels") == 0 && value) {
      if (parse_number(argv[++i], 1, 64, &number) != 0 || number != (int)number)
        return usage_error("--channels '%s': give a whole number from 1 to 64", value);
      stream.channels = (int)number;
    } else if (strcmp(option, "--hop") == 0 && value) {
      if (parse_number(argv[++i], 1e-9, 60, &stream.options.hop_s) != 0)
        return usage_error("--hop '%s': give seconds, more than 0 and at most 60", value);
    } else if (strcmp(option, "--smoothing") == 0 && value) {
      if (parse_number(argv[++i], 1e-9, 1, &stream.options.smoothing) != 0)
        return usage_error("--smoothing '%s': give a weight, more than 0 and at most 1", value);
    } else if (strcmp(option, "--max-delay") == 0 && value) {
      if (parse_number(argv[++i], 0, 3600, &stream.max_delay) != 0)
        return usage_error("--max-delay '%s': give seconds from 0 to 3600", value);
    } else if (strcmp(option, "--device") != 0 && strcmp(option, "--precision") != 0 &&
               strcmp(option, "--threads") != 0 && strcmp(option, "--window") != 0 &&
               strcmp(option, "--repeat") != 0 && strcmp(option, "--format") != 0 &&
               strcmp(option, "--rate") != 0 && strcmp(option, "--channels") != 0 &&
               strcmp(option, "--hop") != 0 && strcmp(option, "--smoothing") != 0 &&
               strcmp(option, "--max-delay") != 0) {
      return usage_error("no such option: %s", option);
    } else if (!value) {
      return usage_error("%s needs a value", option);
    } else {
      ++i;
      if (strcmp(option, "--device") == 0) {
        config.device = value;
      } else if (strcmp(option, "--precision") == 0) {
        config.precision = value;
        runtime_precision = strcmp(value, "fp32") != 0;
      } else if (strcmp(option, "--threads") == 0) {
        double threads = 0;
        if (parse_number(value, 1, 1024, &threads) != 0 || threads != (int)threads)
          return usage_error("--threads '%s': give a whole number from 1 to 1024", value);
        config.threads = (int32_t)threads;
      } else if (strcmp(option, "--window") == 0) {
        if (parse_number(value, 1e-9, 60, &window) != 0)
          return usage_error("--window '%s': give seconds, more than 0 and at most 60", value);
      } else if (parse_number(value, 1, 100000, &repeat) != 0 || repeat != (int)repeat) {
        return usage_error("--repeat '%s': give a whole number from 1 to 100000", value);
      }
    }
  }
  if (live && count != 1) return usage_error("%s", "--stream reads stdin: give the ARTIFACT only");
  if (!live && count < 2) return usage_error("%s", "give an ARTIFACT and at least one FILE");
  if (live && strcmp(stream.encoding, "wav") != 0 && stream.rate == 0)
    return usage_error("--format %s needs --rate: raw samples carry no header", stream.encoding);
  struct stat st;
  if (stat(paths[0], &st) != 0) return usage_error("ARTIFACT '%s' does not exist", paths[0]);
  char *error = NULL;
  /* an artifact, or emo-bench's choice.json (the artifact, device, precision and threads it
   * names; options given here override them, as emo-predict's do) */
  const size_t length = strlen(paths[0]);
  const int choice = length > 5 && strcmp(paths[0] + length - 5, ".json") == 0;
  config.model = paths[0];
  EmoRecognizer *recognizer = EmoRecognizerCreate(&config, &error);
  if (!recognizer) {
    fprintf(stderr, "Error: %s\n", error ? error : "out of memory");
    EmoFreeString(error);
    return 1;
  }
  if (choice)  /* rows say a precision the choice asked for, as emo-predict's do */
    runtime_precision = strcmp(EmoRecognizerPrecision(recognizer),
                               EmoRecognizerExportedPrecision(recognizer)) != 0;
  if (EmoRecognizerUntrained(recognizer) == 1)
    fprintf(stderr, "warning: this model's extractor has UNTRAINED weights: predictions are "
                    "for smoke tests only\n");
  if (live) {
    stream.options.window_s = window;
    struct stat input;  /* a file is not live: every window counts, as in emo-predict */
    if (fstat(0, &input) == 0 && S_ISREG(input.st_mode)) stream.max_delay = 0;
    const int status = classify_stream(recognizer, &stream);
    EmoRecognizerDestroy(recognizer);
    free(paths);
    return status;
  }
  int failed = 0, written = 1;
  for (int k = 1; k < count && written; ++k) {
    failed += classify_file(recognizer, paths[k], window, segments, (int)repeat);
    written = fflush(stdout) == 0 && !ferror(stdout);
  }
  EmoRecognizerDestroy(recognizer);
  free(paths);
  if (!written) {
    fprintf(stderr, "Error: cannot write the results to standard output (%s)\n",
            strerror(errno));
    return 1;
  }
  if (failed) fprintf(stderr, "%d of %d file(s) failed\n", failed, count - 1);
  return failed ? 1 : 0;
}
