"""Face detection, landmarks, alignment, the alignments file, identity and tracking."""
