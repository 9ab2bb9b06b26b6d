"""FADM's four networks (zengbohan0217/FADM 090f0ae; upstream.md §2): face-vid2vid (coarse generator,
``facevid`` + ``animate``), DECA's E_flame (motion encoder, ``deca``), and the diffusion renderer with its
Attribute-Guided Conditioning Network (``renderer``, ``unet``, ``condition``). FOMM's layouts live in
``fomm``. Pure torch: tensors in, tensors out, upstream key layouts."""
