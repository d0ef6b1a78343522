"""The bottom layer: errors, atomic file IO, on-disk layout, configs, seeding, allocator settings.

Every stage package (data_prep, tokenizer, recommender, eval) imports from here and nothing above."""
