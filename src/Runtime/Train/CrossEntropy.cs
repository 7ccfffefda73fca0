namespace ShiftWise.Runtime.Train;

/// <summary>The loss and its gradient from <see cref="CrossEntropy.SmoothedForwardBackward"/>.</summary>
/// <param name="Loss">The mean loss over the batch.</param>
/// <param name="Gradient">dLoss/dlogits, N×K row-major.</param>
public sealed record CrossEntropyResult(double Loss, double[] Gradient);

/// <summary>Cross-entropy with label smoothing.</summary>
public static class CrossEntropy
{
    /// <summary>
    /// torch.nn.CrossEntropyLoss(label_smoothing = ε), mean reduction: the target is (1−ε)·onehot + ε/K, so the
    /// loss of a row is −Σₖ tₖ log softmax(x)ₖ and its gradient (softmax(x) − t)/N. Computed in double with
    /// log-sum-exp.
    /// </summary>
    /// <param name="logits">N×K logits, row-major.</param>
    /// <param name="labels">N class indices in [0, K).</param>
    /// <param name="classes">K.</param>
    /// <param name="smoothing">ε in [0, 1].</param>
    /// <returns>The mean loss and dLoss/dlogits.</returns>
    public static CrossEntropyResult SmoothedForwardBackward(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels,
        int classes, double smoothing)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        if (!(smoothing >= 0 && smoothing <= 1)) throw new ArgumentOutOfRangeException(nameof(smoothing));
        int n = labels.Length;
        if (n == 0 || logits.Length != n * classes)
            throw new ArgumentException($"logits must be {n}×{classes} with at least one row", nameof(logits));
        var grad = new double[n * classes];
        double total = 0, offTarget = smoothing / classes, onTarget = 1 - smoothing + offTarget;
        for (int r = 0; r < n; r++)
        {
            int y = labels[r];
            if ((uint)y >= (uint)classes)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), $"label {y} not in [0, {classes})");
            }
            var row = logits.Slice(r * classes, classes);
            double max = double.NegativeInfinity;
            foreach (float x in row) max = Math.Max(max, x);
            double sumExp = 0, sumLogits = 0;
            foreach (float x in row)
            {
                sumExp += Math.Exp(x - max);
                sumLogits += x;
            }
            double lse = max + Math.Log(sumExp);
            // −Σ tₖ (xₖ − lse) = (1−ε)(lse − x_y) + (ε/K)(K·lse − Σ xₖ)
            total += (1 - smoothing) * (lse - row[y]) + offTarget * (classes * lse - sumLogits);
            for (int k = 0; k < classes; k++)
            {
                double p = Math.Exp(row[k] - lse);
                grad[r * classes + k] = (p - (k == y ? onTarget : offTarget)) / n;
            }
        }
        return new CrossEntropyResult(total / n, grad);
    }
}
