/* Audio files for the example app: every format libsndfile reads (WAV, FLAC, Ogg, MP3,
 * AIFF, ...) when built with it (EMO_WITH_SNDFILE), WAV otherwise (wav.c). Mixed down to
 * mono floats in [-1, 1], as the Python toolkit does. */
#ifndef EMO_EXAMPLES_AUDIO_H_
#define EMO_EXAMPLES_AUDIO_H_

#include "wav.h"

/* Returns 0 on success; otherwise writes a message into `error` (size `error_size`).
 * Free the samples with wav_free. */
int audio_read(const char *path, WavAudio *out, char *error, int error_size);

/* "libsndfile" or "wav": what this build reads with. */
const char *audio_reader(void);

#endif /* EMO_EXAMPLES_AUDIO_H_ */
