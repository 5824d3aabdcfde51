"""The main job on the embedded stack (``finpulse demo``) and simulated readers (``finpulse simulate clicks``)."""
