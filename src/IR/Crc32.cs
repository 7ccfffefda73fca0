using System.Buffers.Binary;

namespace ShiftWise.IR;

/// <summary>
/// CRC-32 as zip and zlib compute it (IEEE 802.3, reflected polynomial 0xEDB88320), slicing-by-8 so a check runs at a
/// few GB/s. Used by the zip reader (<c>.pth</c> entries) and the emitted models' <c>weights.bin</c>.
/// </summary>
public static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Update(0xFFFFFFFF, data) ^ 0xFFFFFFFF;

    /// <summary>
    /// Folds <paramref name="data"/> into a running register (start at 0xFFFFFFFF; the CRC is the final register
    /// XOR 0xFFFFFFFF).
    /// </summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        var t = Table;
        while (data.Length >= 8)
        {
            uint one = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            uint two = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = t[0x700 + (one & 0xFF)] ^ t[0x600 + ((one >> 8) & 0xFF)] ^ t[0x500 + ((one >> 16) & 0xFF)]
                ^ t[0x400 + (one >> 24)] ^ t[0x300 + (two & 0xFF)] ^ t[0x200 + ((two >> 8) & 0xFF)]
                ^ t[0x100 + ((two >> 16) & 0xFF)] ^ t[two >> 24];
            data = data[8..];
        }
        foreach (byte b in data)
        {
            crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return crc;
    }

    /// <summary>Table k maps a byte to its CRC contribution k bytes further along, so 8 bytes fold in at once.</summary>
    private static uint[] BuildTable()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        for (int i = 0; i < 256; i++)
        {
            for (int s = 1; s < 8; s++)
            {
                uint prev = t[(s - 1) * 256 + i];
                t[s * 256 + i] = (prev >> 8) ^ t[prev & 0xFF];
            }
        }
        return t;
    }
}
