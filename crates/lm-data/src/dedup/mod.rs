//! Exact-line and MinHash+LSH deduplication (issue 8; being written)
