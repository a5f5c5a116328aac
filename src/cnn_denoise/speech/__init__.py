"""Recorded speech: Debian's packages (or a user's folder) into clips, and clips into noisy mixtures.

deb.py     ar_members, deb_files: a .deb's files in memory, every size it declares bounded
corpus.py  fetch_deb, read_audio, voice_from_deb, music_from_deb, from_folder
mixer.py   Mix, mix_set, noise, split_prompts: segments of speech at a drawn SNR and kind
"""
