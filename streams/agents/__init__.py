"""The live stream processors, one module each, applied per micro-batch by :mod:`.process`.

* :mod:`.validate` - parse with the contract; invalid messages become dead letters
* :mod:`.dedup` - count each ``event_id`` once within the horizon
* :mod:`.rating` - the warehouse's ``BatchRater``, one call per micro-batch
* :mod:`.aggregate` - 1-minute and 1-hour event-time windows per dimension
* :mod:`.alerts` - tenant daily budget thresholds
* :mod:`.aggregates_out` - closed windows for the compacted aggregates topic
* :mod:`.live` - the Faust agent that feeds them and sends their output
"""
