/* Audio files for the example app, read a block at a time: every format libsndfile reads
 * (WAV, FLAC, Ogg, MP3, AIFF, ...) when built with it (EMO_WITH_SNDFILE), WAV otherwise
 * (wav.c). Blocks are mixed down to mono floats as the Python runtime mixes them (the
 * float32 mean of the channels), and failures carry emo-predict's reason codes. */
#ifndef EMO_EXAMPLES_AUDIO_H_
#define EMO_EXAMPLES_AUDIO_H_

#include <stdint.h>

typedef struct AudioFile AudioFile;

/* Why a file failed: an emo-predict reason code ("unreadable", "empty-file", "corrupt",
 * "truncated", "zero-length"; the rate is the library's to check) and a message without the
 * file name. */
typedef struct AudioError {
  const char *reason;
  char message[512];
} AudioError;

/* Opens a regular file and reads its header; NULL and *error on failure. */
AudioFile *audio_open(const char *path, AudioError *error);

int32_t audio_sample_rate(const AudioFile *file);

/* Reads up to `frames` frames, mixed to mono, into `mono`. Returns the frames read (0 at
 * the end, where a file that held fewer frames than its header declares is an error) or
 * -1 with *error. */
int64_t audio_read(AudioFile *file, float *mono, int64_t frames, AudioError *error);

void audio_close(AudioFile *file);

/* "libsndfile" or "wav": what this build reads with. */
const char *audio_reader(void);

#endif /* EMO_EXAMPLES_AUDIO_H_ */
