"""What a user can choose: params.yaml's typed schema and the names of every choice.

params.py   Params (and its sections), load, flatten: params.yaml checked before any work
choices.py  every choice a user can name (backends, losses, noise kinds, ...) and the shape
            rules of a CNN (shape_problem, receptive_field)
"""
