"""News sources: ``finpulse replay`` (files), ``finpulse scrape`` (RSS/Atom + article pages), ticker tagging.

Reusable pieces (import the modules; nothing here imports them at package import time):

- ``finpulse.tagging.tickers``: ``tag_tickers(*texts)``, ``default_tagger()``, ``TickerTagger``.
- ``finpulse.streams.sources.producer``: ``make_producer(kafka)`` / ``make_async_producer(kafka)`` and their configs.
- ``finpulse.streams.sources.replay``: ``iter_articles(path, ...)``, ``replay_file(settings, path, ...)``,
  ``publish_articles(producer, topic, articles, ...)``, ``Pacer``.
- ``finpulse.streams.sources.sink``: ``ArticleSink`` protocol, ``KafkaArticleSink``, ``ListSink``.
- ``finpulse.streams.sources.scraper``: ``Scraper``, ``run_scraper(settings, feeds, once=...)``.
"""
