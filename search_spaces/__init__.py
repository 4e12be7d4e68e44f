"""Architecture spaces, model builders and ground-truth readers. Imports nothing from distill or d2m_nas."""
