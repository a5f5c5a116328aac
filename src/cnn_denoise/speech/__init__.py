"""Recorded speech: Debian's packages (or a user's folder) into clips, and clips into noisy mixtures.

deb.py     ar_members, deb_files: a .deb's files in memory, every size it declares bounded
corpus.py  fetch_deb, read_audio, music_from_deb, from_folder
voices.py  PACKAGES, check_package, voices_from_deb, corpus_speech, split_voices: many voices, reserved ones refused
mixer.py   Mix, mix_set, noise, split_corpus, split_prompts: segments of speech at a drawn SNR and kind
"""
