"""Face-Adapter generation: identity and attribute tokens, conditioning, the sampling glue and the blend.

One model function, two samplers: everything here is shared by the native ComfyUI path (stock
KSampler through the bridge) and the standalone diffusers path (generate/standalone.py).
"""
