#include "wav.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *error, int size, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(error, (size_t)size, fmt, args);
  va_end(args);
  return -1;
}

static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* One sample of `bits` at `p` as a float in [-1, 1]. */
static double decode(const unsigned char *p, int bits, int is_float) {
  if (is_float) {
    if (bits == 32) {
      float f;
      memcpy(&f, p, 4);
      return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
  }
  switch (bits) {
    case 8: return ((int)p[0] - 128) / 128.0;
    case 16: return (int16_t)u16(p) / 32768.0;
    case 24: {
      int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24);
      return (v >> 8) / 8388608.0;
    }
    default: return (int32_t)u32(p) / 2147483648.0;
  }
}

int wav_read(const char *path, WavAudio *out, char *error, int error_size) {
  memset(out, 0, sizeof(*out));
  FILE *f = fopen(path, "rb");
  if (!f) return fail(error, error_size, "cannot open the file");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size < 12) {
    fclose(f);
    return fail(error, error_size, size == 0 ? "empty file" : "too short to be a WAV file");
  }
  unsigned char *data = malloc((size_t)size);
  if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
    free(data);
    fclose(f);
    return fail(error, error_size, "cannot read the file");
  }
  fclose(f);
  int rc = -1;
  if (memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WAVE", 4) != 0) {
    rc = fail(error, error_size, "not a RIFF/WAVE file");
    goto done;
  }
  const unsigned char *fmt = NULL, *pcm = NULL;
  uint32_t fmt_size = 0, pcm_size = 0;
  long pos = 12;
  while (pos + 8 <= size) {
    uint32_t chunk = u32(data + pos + 4);
    const unsigned char *body = data + pos + 8;
    if (memcmp(data + pos, "fmt ", 4) == 0) {
      fmt = body;
      fmt_size = chunk;
    } else if (memcmp(data + pos, "data", 4) == 0) {
      pcm = body;
      pcm_size = chunk;
      if ((long)chunk > size - pos - 8) {
        rc = fail(error, error_size, "truncated: the data chunk declares %u bytes, %ld are there",
                  chunk, size - pos - 8);
        goto done;
      }
      break;
    }
    pos += 8 + (long)chunk + (chunk & 1);
  }
  if (!fmt || fmt_size < 16) {
    rc = fail(error, error_size, "no fmt chunk");
    goto done;
  }
  if (!pcm) {
    rc = fail(error, error_size, "no data chunk");
    goto done;
  }
  int format = u16(fmt), channels = u16(fmt + 2), bits = u16(fmt + 14);
  uint32_t rate = u32(fmt + 4);
  if (format == 0xFFFE && fmt_size >= 26) format = u16(fmt + 24); /* extensible: sub-format */
  int is_float = format == 3;
  int ok_bits = is_float ? (bits == 32 || bits == 64)
                         : (bits == 8 || bits == 16 || bits == 24 || bits == 32);
  if ((format != 1 && format != 3) || !ok_bits || channels < 1 || rate == 0) {
    rc = fail(error, error_size, "unsupported WAV encoding (format %d, %d bits, %d channels); "
              "use PCM or float", format, bits, channels);
    goto done;
  }
  int frame = channels * bits / 8;
  int64_t count = pcm_size / (uint32_t)frame;
  if (count == 0) {
    rc = fail(error, error_size, "no audio samples (empty data chunk)");
    goto done;
  }
  out->samples = malloc((size_t)count * sizeof(float));
  if (!out->samples) {
    rc = fail(error, error_size, "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < count; ++i) {
    double sum = 0.0;
    for (int c = 0; c < channels; ++c) sum += decode(pcm + i * frame + c * bits / 8, bits, is_float);
    out->samples[i] = (float)(sum / channels);
  }
  out->count = count;
  out->sample_rate = (int32_t)rate;
  out->channels = channels;
  rc = 0;
done:
  free(data);
  return rc;
}

void wav_free(WavAudio *audio) {
  free(audio->samples);
  audio->samples = NULL;
  audio->count = 0;
}
