namespace ShiftWise.Frontend.IO.Images;

/// <summary>
/// Pillow's convolution resampling (<c>Image.resize(size, BICUBIC)</c> on an 8-bit RGB image; Pillow's
/// <c>libImaging/Resample.c</c>), written from a reading of that file. It has to be bit-exact, not merely close:
/// the models were trained on images resized by PIL, and an input off by one grey level here and there is a
/// different input; matching it exactly makes "swc run photo.jpg" give what the original's evaluation gives.
/// What that takes, all reproduced here:
/// <list type="bullet">
/// <item>the filter: Keys' cubic convolution with a = -0.5, support 2, stretched by the downscale factor (so a
/// downscale averages over all the pixels it covers: PIL's antialiasing);</item>
/// <item>each output pixel's window: centre (i + 0.5) * in / out, first input (int)(centre - support + 0.5) and end
/// (int)(centre + support + 0.5), clamped to the image; weights filter((x + first - centre + 0.5) / scale), divided
/// by their sum, in doubles in that order;</item>
/// <item>fixed point: each weight times 2^22 (PRECISION_BITS = 32 - 8 - 2), rounded half away from zero to an
/// int; sums start at 2^21 (to round) and the result is sum &gt;&gt; 22 clamped to 0..255;</item>
/// <item>two passes, horizontal first, the intermediate image clamped to 8 bits; a pass is skipped when that side
/// keeps its length (PIL copies it).</item>
/// </list>
/// Each output pixel depends only on its own window, so computing just the pixels the centre crop keeps (and the
/// intermediate rows they need) gives those pixels bit for bit.
/// </summary>
internal sealed class PilAxis
{
    /// <summary>Pillow's PRECISION_BITS for 8-bit images: 8 bits of result and 2 of headroom in an int.</summary>
    public const int PrecisionBits = 32 - 8 - 2;

    private PilAxis(int kSize, int[] first, int[] count, int[] weights)
    {
        KSize = kSize;
        First = first;
        Count = count;
        Weights = weights;
    }

    /// <summary>The stride of <see cref="Weights"/>: PIL's ksize, ceil(support) * 2 + 1.</summary>
    public int KSize { get; }

    /// <summary>The first input index of each computed output index.</summary>
    public int[] First { get; }

    /// <summary>The number of inputs of each computed output index.</summary>
    public int[] Count { get; }

    /// <summary>The fixed-point weights, <see cref="KSize"/> per computed output index.</summary>
    public int[] Weights { get; }

    /// <summary>The first input index any computed output uses.</summary>
    public int InputStart => First[0];

    /// <summary>One past the last input index any computed output uses.</summary>
    public int InputEnd => First[^1] + Count[^1];

    /// <summary>
    /// PIL's coefficients for resizing <paramref name="inSize"/> pixels to <paramref name="outSize"/> (the whole
    /// input, PIL's default box), for the outputs <paramref name="from"/> to <paramref name="to"/> (exclusive) only.
    /// </summary>
    public static PilAxis Bicubic(int inSize, int outSize, int from, int to)
    {
        const double filterSupport = 2.0;
        // Pillow: scale = (double)(in1 - in0) / outSize, in1 - in0 a float; exact for any side below 2^24.
        var scale = (double)inSize / outSize;
        var filterScale = Math.Max(scale, 1.0);
        var support = filterSupport * filterScale;
        var kSize = (int)Math.Ceiling(support) * 2 + 1;
        var n = to - from;
        var first = new int[n];
        var count = new int[n];
        var weights = new int[checked(n * kSize)];
        var k = new double[kSize];
        var ss = 1.0 / filterScale;
        for (var i = 0; i < n; i++)
        {
            var center = (from + i + 0.5) * scale;
            var xmin = Math.Max((int)(center - support + 0.5), 0);
            var xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            var ww = 0.0;
            for (var x = 0; x < xmax; x++)
            {
                var w = Cubic((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (var x = 0; x < xmax; x++)
            {
                var w = ww != 0.0 ? k[x] / ww : k[x];
                weights[i * kSize + x] = w < 0
                    ? (int)(-0.5 + w * (1 << PrecisionBits))
                    : (int)(0.5 + w * (1 << PrecisionBits));
            }
            first[i] = xmin;
            count[i] = Math.Max(xmax, 0);
        }
        return new PilAxis(kSize, first, count, weights);
    }

    /// <summary>Pillow's bicubic_filter: Keys' cubic with a = -0.5, in the same order of operations.</summary>
    private static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0)
        {
            x = -x;
        }
        if (x < 1.0)
        {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0)
        {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    /// <summary>Pillow's clip8: the fixed-point sum to a byte (its lookup table is this clamp).</summary>
    public static byte Clip8(int sum)
    {
        var v = sum >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }
}

/// <summary>
/// Resizes and centre-crops an image as its rows arrive from the decoder: the horizontal pass runs on each row the
/// crop needs (so a 50-megapixel photo never sits whole in memory here), the vertical pass at the end; see
/// <see cref="PilAxis"/> for why this is PIL's arithmetic exactly. The result is the crop, HWC, 3 bytes a pixel.
/// </summary>
internal sealed class PilResampler
{
    private const int Half = 1 << (PilAxis.PrecisionBits - 1);
    private readonly ResizePlan _plan;
    private readonly PilAxis? _h;
    private readonly PilAxis? _v;
    private readonly int _r0, _r1, _c0, _c1;
    private readonly int _rowStart, _rowEnd;
    private readonly byte[] _temp;

    public PilResampler(int width, int height, ResizePlan plan)
    {
        _plan = plan;
        // The crop's window within the resized image: the only pixels computed.
        _r0 = Math.Clamp(plan.Top, 0, plan.Height);
        _r1 = Math.Clamp(plan.Top + plan.Size, _r0, plan.Height);
        _c0 = Math.Clamp(plan.Left, 0, plan.Width);
        _c1 = Math.Clamp(plan.Left + plan.Size, _c0, plan.Width);
        if (_r1 > _r0 && _c1 > _c0)
        {
            _h = plan.Width != width ? PilAxis.Bicubic(width, plan.Width, _c0, _c1) : null;
            _v = plan.Height != height ? PilAxis.Bicubic(height, plan.Height, _r0, _r1) : null;
        }
        (_rowStart, _rowEnd) = _v is null ? (_r0, _r1) : (_v.InputStart, _v.InputEnd);
        _temp = new byte[checked((_rowEnd - _rowStart) * (_c1 - _c0) * 3)];
    }

    /// <summary>The decoded row <paramref name="y"/>: 1 (grey) or 4 (RGBA) bytes a pixel; alpha is ignored, as
    /// PIL's convert('RGB') drops it without compositing.</summary>
    public void Row(int y, ReadOnlySpan<byte> px, int bpp)
    {
        if (y < _rowStart || y >= _rowEnd)
        {
            return;
        }
        var cols = _c1 - _c0;
        var dst = _temp.AsSpan((y - _rowStart) * cols * 3, cols * 3);
        if (_h is null)
        {
            for (var i = 0; i < cols; i++)
            {
                var s = (_c0 + i) * bpp;
                dst[i * 3] = px[s];
                dst[i * 3 + 1] = px[bpp == 1 ? s : s + 1];
                dst[i * 3 + 2] = px[bpp == 1 ? s : s + 2];
            }
            return;
        }
        var w = _h.Weights;
        for (var i = 0; i < cols; i++)
        {
            int xmin = _h.First[i], n = _h.Count[i], k = i * _h.KSize;
            if (bpp == 1)
            {
                // A grey image converted to RGB has three equal channels: one sum gives all three.
                var s = Half;
                for (var x = 0; x < n; x++)
                {
                    s += px[xmin + x] * w[k + x];
                }
                dst[i * 3] = dst[i * 3 + 1] = dst[i * 3 + 2] = PilAxis.Clip8(s);
                continue;
            }
            int s0 = Half, s1 = Half, s2 = Half;
            for (var x = 0; x < n; x++)
            {
                var p = (xmin + x) * 4;
                var c = w[k + x];
                s0 += px[p] * c;
                s1 += px[p + 1] * c;
                s2 += px[p + 2] * c;
            }
            dst[i * 3] = PilAxis.Clip8(s0);
            dst[i * 3 + 1] = PilAxis.Clip8(s1);
            dst[i * 3 + 2] = PilAxis.Clip8(s2);
        }
    }

    /// <summary>The vertical pass and the crop: <c>Size x Size x 3</c> bytes, zeros where the crop pads.</summary>
    public byte[] Finish()
    {
        var size = _plan.Size;
        var output = new byte[size * size * 3];
        var cols = _c1 - _c0;
        var stride = cols * 3;
        var acc = new int[stride];
        for (var r = _r0; r < _r1; r++)
        {
            var dst = output.AsSpan(((r - _plan.Top) * size + (_c0 - _plan.Left)) * 3, stride);
            if (_v is null)
            {
                _temp.AsSpan((r - _rowStart) * stride, stride).CopyTo(dst);
                continue;
            }
            var j = r - _r0;
            int ymin = _v.First[j] - _rowStart, n = _v.Count[j], k = j * _v.KSize;
            Array.Fill(acc, Half);
            // Integer sums: the order of the terms cannot change them, so rows are summed whole for speed.
            for (var y = 0; y < n; y++)
            {
                var c = _v.Weights[k + y];
                var src = _temp.AsSpan((ymin + y) * stride, stride);
                for (var i = 0; i < stride; i++)
                {
                    acc[i] += src[i] * c;
                }
            }
            for (var i = 0; i < stride; i++)
            {
                dst[i] = PilAxis.Clip8(acc[i]);
            }
        }
        return output;
    }
}
