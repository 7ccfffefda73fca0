using ShiftWise.IR.Ops;

namespace ShiftWise.IR.Reference;

/// <summary>The float64 reference of <see cref="GemmGrnFold"/>: its two GEMMs in turn, GRN's β zero.</summary>
internal static partial class FusedKernels
{
    public static double[] GemmGrnFold(GemmGrnFold f, Arr[] xs)
    {
        var (a, b) = f.Split(xs);
        a[^1] = a[^1] with { Data = new double[a[^1].Data.Length] };
        var first = f.First;
        var uShape = first.Infer(a.Select(t => new TensorType(DType.F64, t.Shape)).ToArray())[0].Shape;
        var u = new Arr(uShape, Gemm(first, a));
        return Gemm(f.Second, [u, .. b]);
    }
}
