"""The MapScribe Processing provider and its algorithms."""
