"""Thin adapters for trainers' own conventions (TRL today; verl and OpenRLHF files are open work).
Each adapter sits on the one reward protocol and adds nothing a trainer does not ask for."""
