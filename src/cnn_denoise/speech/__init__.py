"""Recorded speech: Debian's packages (or a user's folder) into clips, and clips into noisy mixtures.

corpus.py  fetch_deb, deb_files, read_audio, voice_from_deb, music_from_deb, from_folder
mixer.py   Mix, mix_set, noise, split_prompts: segments of speech at a drawn SNR and kind
"""
