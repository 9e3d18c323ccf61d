"""Thin adapters for trainers' own conventions (TRL, verl; an OpenRLHF reward_func file is open work).
Each adapter sits on the one reward protocol and adds nothing a trainer does not ask for."""
