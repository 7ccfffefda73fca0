namespace ShiftWise.Frontend.Tables;

/// <summary>
/// The Mersenne Twister MT19937 (Matsumoto and Nishimura, 1998) with the reference init_genrand. It is the
/// generator behind both numpy's legacy RandomState and torch's CPU generator, so seeding it with 123 reproduces
/// the original's draws bit-exactly.
/// </summary>
public sealed class Mt19937
{
    private const int N = 624;
    private const int M = 397;
    private readonly uint[] _mt = new uint[N];
    private int _i;

    /// <summary>init_genrand(seed).</summary>
    public Mt19937(uint seed)
    {
        _mt[0] = seed;
        for (int i = 1; i < N; i++)
        {
            _mt[i] = unchecked(1812433253u * (_mt[i - 1] ^ (_mt[i - 1] >> 30)) + (uint)i);
        }
        _i = N;
    }

    /// <summary>genrand_int32: the next 32-bit word.</summary>
    public uint NextUInt32()
    {
        if (_i >= N) Twist();
        uint y = _mt[_i++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C5680u;
        y ^= (y << 15) & 0xEFC60000u;
        y ^= y >> 18;
        return y;
    }

    /// <summary>genrand_res53: a double in [0, 1) with 53 random bits.</summary>
    public double NextDouble()
    {
        uint a = NextUInt32() >> 5, b = NextUInt32() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

    private void Twist()
    {
        for (int k = 0; k < N; k++)
        {
            uint y = (_mt[k] & 0x80000000u) | (_mt[(k + 1) % N] & 0x7FFFFFFFu);
            _mt[k] = _mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908B0DFu : 0u);
        }
        _i = 0;
    }
}
