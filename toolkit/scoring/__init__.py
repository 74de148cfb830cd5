"""Scoring an archive on a Ray cluster (`emo-predict ray`): archive.py."""
