using ShiftWise.Frontend.IO;

namespace ShiftWise.Runtime.Train;

/// <summary>
/// The data side of a <see cref="TrainRun"/>: Fashion-MNIST loading (cut to the first images when limited), batch
/// assembly with the seeded augmentation (mirror, translation, random erasing) and normalisation, and the epoch's
/// shuffle. Every random choice is a SplitMix64 hash of the seed and the epoch or step, so a run resumed from a
/// checkpoint draws the same batches as the uninterrupted run.
/// </summary>
internal sealed class TrainData
{
    private readonly TrainConfig _cfg;

    /// <summary>Takes the data directory, normalisation and augmentation settings from
    /// <paramref name="cfg"/>.</summary>
    public TrainData(TrainConfig cfg) => _cfg = cfg;

    /// <summary>The split ("train" or "t10k"), cut to its first <paramref name="limit"/> images when
    /// positive.</summary>
    public ImageSet Load(string split, int limit)
    {
        var set = FashionMnist.Load(split, _cfg.DataDir);
        if (limit <= 0 || limit >= set.Count) return set;
        int px = set.Images.Data.Length / set.Count;
        var images = new IdxArray([limit, .. set.Images.Dims[1..]], set.Images.Data[..(limit * px)]);
        var labels = new IdxArray([limit], set.Labels.Data[..limit]);
        return new ImageSet(images, labels, set.Classes);
    }

    /// <summary>
    /// Writes batch <paramref name="s"/> of the epoch (images <paramref name="order"/>[s·B ..]) into
    /// <paramref name="x"/> and <paramref name="y"/>, each image augmented from its own draw of (seed, step, b).
    /// </summary>
    public void Batch(ImageSet train, int[] order, int s, long step, Span<float> x, Span<int> y, int pixels)
    {
        for (int b = 0; b < _cfg.Batch; b++)
        {
            int idx = order[s * _cfg.Batch + b];
            ulong rnd = Mix(_cfg.Seed, (ulong)step, (ulong)b);
            bool flip = _cfg.HFlip && (rnd & 1) == 1;
            int span = 2 * _cfg.Shift + 1;
            int dy = (int)((rnd >> 8) % (ulong)span) - _cfg.Shift;
            int dx = (int)((rnd >> 24) % (ulong)span) - _cfg.Shift;
            Fill(train, idx, x.Slice(b * pixels, pixels), flip, dy, dx);
            if (_cfg.Erase > 0)
            {
                Erase(x.Slice(b * pixels, pixels), train.Images.Dims[1], train.Images.Dims[2],
                    Mix(_cfg.Seed, (ulong)step, (ulong)b + (1UL << 32)));
            }
            y[b] = train.Labels.Data[idx];
        }
    }

    /// <summary>
    /// Writes image <paramref name="idx"/> normalised, optionally mirrored and translated by (dy, dx): output pixel
    /// (i, j) reads source (i − dy, j − dx) of the (mirrored) image, background (pixel 0) outside it.
    /// </summary>
    public void Fill(ImageSet set, int idx, Span<float> dst, bool flip, int dy = 0, int dx = 0)
    {
        int h = set.Images.Dims[1], w = set.Images.Dims[2];
        var src = set.Images.Data.AsSpan(idx * h * w, h * w);
        float a = (float)(1 / (255.0 * _cfg.Std)), b = (float)(-_cfg.Mean / _cfg.Std);
        for (int i = 0; i < h; i++)
        {
            int si = i - dy;
            for (int j = 0; j < w; j++)
            {
                int sj = j - dx;
                bool inside = si >= 0 && si < h && sj >= 0 && sj < w;
                dst[i * w + j] = inside ? src[si * w + (flip ? w - 1 - sj : sj)] * a + b : b;
            }
        }
    }

    /// <summary>The epoch's order of the training images: Fisher–Yates driven by SplitMix64 of (seed,
    /// epoch).</summary>
    public static int[] Shuffle(int n, uint seed, int epoch)
    {
        var order = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(Mix(seed, 0xE70C, (ulong)epoch * (ulong)n + (ulong)i) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>
    /// Random erasing (Zhong et al. 2017) from one 64-bit draw, stretched by SplitMix64: with probability
    /// <see cref="TrainConfig.Erase"/> a rectangle of 2–25% of the area with aspect 0.3–3.3 (log-uniform) at a
    /// uniform position gets uniform random pixels, normalised like the image.
    /// </summary>
    private void Erase(Span<float> img, int h, int w, ulong rnd)
    {
        ulong state = rnd;
        double U() => (Mix(0, state += 0x9E3779B97F4A7C15UL, 0) >> 11) * (1.0 / (1UL << 53));
        if (U() >= _cfg.Erase) return;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double area = (0.02 + 0.23 * U()) * h * w;
            double aspect = Math.Exp(Math.Log(0.3) + (Math.Log(3.3) - Math.Log(0.3)) * U());
            int eh = (int)Math.Round(Math.Sqrt(area * aspect)), ew = (int)Math.Round(Math.Sqrt(area / aspect));
            if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
            int top = (int)(U() * (h - eh + 1)), left = (int)(U() * (w - ew + 1));
            float a = (float)(1 / _cfg.Std), b = (float)(-_cfg.Mean / _cfg.Std);
            for (int i = top; i < top + eh; i++)
            for (int j = left; j < left + ew; j++) img[i * w + j] = (float)U() * a + b;
            return;
        }
    }

    private static ulong Mix(uint seed, ulong a, ulong b)
    {
        ulong z = unchecked(seed * 0x9E3779B97F4A7C15UL + a * 0xD1B54A32D192ED03UL + b * 0xBF58476D1CE4E5B9UL
            + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
}
