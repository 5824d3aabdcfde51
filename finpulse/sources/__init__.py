"""News sources: ``finpulse replay`` (files), ``finpulse scrape`` (RSS/Atom + article pages), ticker tagging.

Reusable pieces (import the modules; nothing here imports them at package import time):

- ``finpulse.sources.tickers``: ``tag_tickers(*texts)``, ``default_tagger()``, ``TickerTagger``.
- ``finpulse.sources.producer``: ``make_producer(kafka)`` / ``make_async_producer(kafka)`` and their configs.
- ``finpulse.sources.replay``: ``iter_articles(path, ...)``, ``replay_file(settings, path, ...)``,
  ``publish_articles(producer, topic, articles, ...)``, ``Pacer``.
- ``finpulse.sources.sink``: ``ArticleSink`` protocol, ``KafkaArticleSink``, ``ListSink``.
- ``finpulse.sources.scraper``: ``Scraper``, ``run_scraper(settings, feeds, once=...)``.
"""
