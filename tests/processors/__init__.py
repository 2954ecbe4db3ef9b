"""Tests of the processors in processors/."""
