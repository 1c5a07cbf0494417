"""Tests of the canonical EHR contract: row models, readers, validator, `cohort validate`."""
