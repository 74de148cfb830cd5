/* emo_classify: classify audio files with an emo-toolkit artifact, one JSON line per file.
 *
 *   emo_classify [--device DEVICE] [--repeat N] ARTIFACT FILE...
 *
 * ARTIFACT: model.onnx (OpenVINO backend; DEVICE cpu or an OpenVINO device name),
 * model.torchscript.pt or model.aoti.pt2 (libtorch; DEVICE cpu, cuda or cuda:N), as this
 * build has them. FILE: any format libsndfile reads (WAV only in a build without it);
 * channels are averaged to mono.
 *
 * Prints {"file", "label", "probabilities": {label: p, ...}} per file, or
 * {"file", "error"} when a file cannot be classified. With --repeat N each file is
 * classified N times and "latency_ms" (the median) and "first_ms" (the first call) are
 * added. Exit status: 0 when every
 * file was classified, 1 when any failed, 2 on a usage error or an artifact that does
 * not load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emo_toolkit/c_api.h"
#include "audio.h"

static void json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static void print_error(const char *file, const char *message) {
  printf("{\"file\": ");
  json_string(file);
  printf(", \"error\": ");
  json_string(message);
  printf("}\n");
  fprintf(stderr, "emo_classify: %s: %s\n", file, message);
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Classifies one file; returns 0 on success. */
static int classify_file(EmoRecognizer *recognizer, const char *path, int repeat) {
  WavAudio audio;
  char message[512];
  if (audio_read(path, &audio, message, sizeof message) != 0) {
    print_error(path, message);
    return 1;
  }
  double *times = calloc((size_t)repeat, sizeof(double));
  EmoResult *result = NULL;
  char *error = NULL;
  for (int i = 0; i < repeat && times; ++i) {
    EmoResultDestroy(result);
    double start = now_ms();
    result = EmoClassify(recognizer, audio.samples, audio.count, audio.sample_rate, &error);
    times[i] = now_ms() - start;
    if (!result) break;
  }
  wav_free(&audio);
  if (!result) {
    print_error(path, error ? error : "out of memory");
    EmoFreeString(error);
    free(times);
    return 1;
  }
  printf("{\"file\": ");
  json_string(path);
  printf(", \"label\": ");
  json_string(EmoRecognizerLabel(recognizer, result->label));
  printf(", \"probabilities\": {");
  for (int32_t k = 0; k < result->num_labels; ++k) {
    printf(k ? ", " : "");
    json_string(EmoRecognizerLabel(recognizer, k));
    printf(": %.7g", result->probabilities[k]);
  }
  printf("}");
  if (repeat > 1) {
    const double first = times[0];  /* the first call at this length, kept apart */
    qsort(times, (size_t)repeat, sizeof(double), compare_doubles);
    printf(", \"latency_ms\": %.3f, \"first_ms\": %.3f, \"repeats\": %d", times[repeat / 2],
           first, repeat);
  }
  printf("}\n");
  EmoResultDestroy(result);
  free(times);
  return 0;
}

int main(int argc, char **argv) {
  const char *device = "cpu";
  int repeat = 1, i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; ++i) {
    if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      device = argv[++i];
    } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = atoi(argv[++i]);
      if (repeat < 1) repeat = 1;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("emo_classify (emo-toolkit C API %s; audio: %s)\n", EmoVersion(), audio_reader());
      return 0;
    } else {
      break;
    }
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: emo_classify [--device DEVICE] [--repeat N] ARTIFACT FILE...\n");
    return 2;
  }
  char *error = NULL;
  EmoRecognizer *recognizer = EmoRecognizerCreate(argv[i], device, &error);
  if (!recognizer) {
    fprintf(stderr, "emo_classify: %s\n", error ? error : "out of memory");
    EmoFreeString(error);
    return 2;
  }
  int failed = 0;
  for (int k = i + 1; k < argc; ++k) failed += classify_file(recognizer, argv[k], repeat);
  fflush(stdout);
  EmoRecognizerDestroy(recognizer);
  return failed ? 1 : 0;
}
