"""FADM video reenactment: coarse animation, the refinement sampler and chunked video.

Handles (``models``) name files and fetch networks from the one model cache; ``video`` runs frames in
chunks so memory is bounded by ``frames_per_batch``, not by the video's length. No ComfyUI here.
"""
