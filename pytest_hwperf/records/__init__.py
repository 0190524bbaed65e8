"""The typed result model (records/types.py) and its JSON edge (records/codec.py)."""
