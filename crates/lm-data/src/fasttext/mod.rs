//! fastText-format models: reading .bin/.ftz, inference, supervised training (issue 8; being written)
