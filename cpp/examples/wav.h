/* A WAV reader for the example app when libsndfile is absent: PCM 8/16/24/32-bit, IEEE
 * float 32/64-bit, WAVE_FORMAT_EXTENSIBLE, any channel count; read a block at a time. */
#ifndef EMO_EXAMPLES_WAV_H_
#define EMO_EXAMPLES_WAV_H_

#include <stdint.h>

typedef struct WavFile WavFile;

/* Reads the header; NULL with an emo-predict reason code and a message on failure. */
WavFile *wav_open(const char *path, const char **reason, char *message, int size);
int32_t wav_sample_rate(const WavFile *wav);
int wav_channels(const WavFile *wav);
int64_t wav_frames(const WavFile *wav); /* what the data chunk declares */

/* Reads up to `frames` frames as interleaved floats in [-1, 1]: the frames read, 0 at the
 * end of the data (or of the file, when it is shorter), -1 on a read error. */
int64_t wav_read_frames(WavFile *wav, float *out, int64_t frames);

void wav_close(WavFile *wav);

#endif /* EMO_EXAMPLES_WAV_H_ */
