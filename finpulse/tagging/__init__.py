"""Tagging of article text: tickers (company list) and sectors."""
