"""DICOM SEG and Structured Report export."""
